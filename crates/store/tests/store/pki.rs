//! Certificate authorities and certificates.

use super::*;

both!(
    certificate_authorities_and_certificates,
    |store: Store| async move {
        use mytracks_store::{NewCa, NewCertificate};
        let alice = store.create_user(&alice()).await.unwrap();
        let new_ca = |name: &str| NewCa {
            common_name: name.into(),
            algorithm: "ecdsa-p256".into(),
            cert_pem: "PEM".into(),
            key_sealed: "v1:sealed".into(),
            serial: format!("{name}-serial"),
            fingerprint: "AA:BB".into(),
            not_before: 1,
            not_after: 2,
            imported: false,
        };
        assert_eq!(store.active_ca().await.unwrap(), None);
        let first = store.insert_active_ca(&new_ca("first")).await.unwrap();
        assert!(first.active);
        let second = store.insert_active_ca(&new_ca("second")).await.unwrap();
        assert_eq!(
            store.active_ca().await.unwrap().unwrap().id,
            second.id,
            "one active CA"
        );
        let history = store.cas().await.unwrap();
        assert_eq!(history.len(), 2);
        assert!(!history[1].active && history[1].deactivated_at.is_some());
        assert_eq!(store.next_crl_number(second.id).await.unwrap(), 1);
        assert_eq!(
            store.next_crl_number(second.id).await.unwrap(),
            2,
            "monotonic"
        );

        let cert = |kind: &str, serial: &str, user_id: Option<i64>| NewCertificate {
            ca_id: second.id,
            kind: kind.into(),
            user_id,
            common_name: "x".into(),
            names: String::new(),
            cert_pem: "PEM".into(),
            key_sealed: "v1:k".into(),
            serial: serial.into(),
            fingerprint: "F".into(),
            not_before: 1,
            not_after: 2,
        };
        let server1 = store
            .insert_certificate(&cert("server", "s1", None))
            .await
            .unwrap();
        let server2 = store
            .insert_certificate(&cert("server", "s2", None))
            .await
            .unwrap();
        let active = store.active_server_certificate(1).await.unwrap().unwrap();
        assert_eq!(
            active.id, server2.id,
            "the newest server certificate is presented"
        );
        assert!(!store.certificate(server1.id).await.unwrap().unwrap().active);
        let client = store
            .insert_certificate(&cert("client", "c1", Some(alice.id)))
            .await
            .unwrap();
        assert!(matches!(
            store
                .insert_certificate(&cert("client", "c1", Some(alice.id)))
                .await,
            Err(StoreError::Conflict("serial"))
        ));
        assert_eq!(
            store
                .certificates("client", Some(alice.id))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.certificates("client", None).await.unwrap().len(), 1);
        assert_eq!(store.certificates("server", None).await.unwrap().len(), 2);

        store.revoke_certificate(client.id, 100).await.unwrap();
        store.revoke_certificate(client.id, 200).await.unwrap();
        assert_eq!(
            store.revoked_serials(second.id).await.unwrap(),
            [("c1".to_owned(), 100)]
        );
        store.delete_certificate(client.id).await.unwrap();
        assert!(store.revoked_serials(second.id).await.unwrap().is_empty());
        assert_eq!(
            store.active_server_certificate(2).await.unwrap(),
            None,
            "expired at 2"
        );

        // Changes are counted for other processes; a deleted user's certificate stays, revoked.
        let version = store.pki_version().await.unwrap();
        let kept = store
            .insert_certificate(&cert("client", "c2", Some(alice.id)))
            .await
            .unwrap();
        let after_insert = store.pki_version().await.unwrap();
        assert!(after_insert > version);
        store.next_crl_number(second.id).await.unwrap();
        assert_eq!(
            store.pki_version().await.unwrap(),
            after_insert,
            "a new CRL number is not a change"
        );
        store.delete_user(alice.id).await.unwrap();
        let kept = store.certificate(kept.id).await.unwrap().unwrap();
        assert_eq!(kept.user_id, None);
        assert!(kept.revoked_at.is_some());
        assert_eq!(store.revoked_serials(second.id).await.unwrap().len(), 1);
        assert!(store.pki_version().await.unwrap() > after_insert);

        store.deactivate_ca().await.unwrap();
        assert_eq!(store.active_ca().await.unwrap(), None);
        assert_eq!(
            store
                .active_server_certificate(mytracks_store::now())
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.expunge_inactive_cas().await.unwrap(), 2);
        assert!(
            store.certificates("server", None).await.unwrap().is_empty(),
            "cascade"
        );
    }
);
