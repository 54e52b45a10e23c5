//! Accounts: users, access versions, cascading deletes, tokens and credentials, sessions,
//! shares.

use super::*;

both!(users_round_trip, |store: Store| async move {
    let before = mytracks_store::now();
    let user = store.create_user(&alice()).await.unwrap();
    assert_eq!(user.username, "alice");
    assert_eq!(user.email, "alice@example.org");
    assert!(user.is_active && !user.is_admin);
    assert!(user.created_at >= before);
    assert_eq!(user.last_login, None);
    assert_eq!(user.settings, "{}");

    assert_eq!(
        store.user_by_id(user.id).await.unwrap().as_ref(),
        Some(&user)
    );
    assert_eq!(
        store.user_by_name("alice").await.unwrap().as_ref(),
        Some(&user)
    );
    assert_eq!(store.user_by_name("Alice").await.unwrap(), None);
    assert_eq!(store.user_by_id(user.id + 1000).await.unwrap(), None);

    let duplicate = store.create_user(&alice()).await.unwrap_err();
    assert!(
        matches!(duplicate, StoreError::Conflict("username")),
        "{duplicate}"
    );

    let changed = store
        .update_profile(
            user.id,
            &ProfileChanges {
                first_name: Some("Al".into()),
                settings: Some(r#"{"theme":"dark"}"#.into()),
                ..ProfileChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.first_name, "Al");
    assert_eq!(changed.last_name, "Liddell", "untouched fields stay");
    assert_eq!(changed.settings, r#"{"theme":"dark"}"#);
    assert!(matches!(
        store.update_profile(9999, &ProfileChanges::default()).await,
        Err(StoreError::NotFound)
    ));

    store.set_password_hash(user.id, "new-hash").await.unwrap();
    store.set_admin(user.id, true).await.unwrap();
    store.record_login(user.id, 1_700_000_000).await.unwrap();
    let user = store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(user.password_hash, "new-hash");
    assert!(user.is_admin);
    assert_eq!(user.last_login, Some(1_700_000_000));
    assert_eq!(store.active_admin_count().await.unwrap(), 1);
    store.set_active(user.id, false).await.unwrap();
    assert_eq!(store.active_admin_count().await.unwrap(), 0);
    assert!(matches!(
        store.set_active(4242, true).await,
        Err(StoreError::NotFound)
    ));

    store.create_user(&named("zed")).await.unwrap();
    store.create_user(&named("bob")).await.unwrap();
    let names: Vec<String> = store
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob", "zed"]);
});

both!(access_changes_bump_the_version, |store: Store| async move {
    let mut last = store.account_version().await.unwrap();
    let changed = || {
        let store = store.clone();
        async move { store.account_version().await.unwrap() }
    };
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    let bumped = changed().await;
    assert!(bumped > last, "created users");
    last = bumped;
    store.record_login(alice.id, 5).await.unwrap();
    store
        .update_profile(alice.id, &ProfileChanges::default())
        .await
        .unwrap();
    assert_eq!(
        changed().await,
        last,
        "logins and profile edits do not count"
    );
    for step in 0..5 {
        match step {
            0 => store.set_active(alice.id, false).await.unwrap(),
            1 => store.set_admin(alice.id, true).await.unwrap(),
            2 => {
                store.create_share(alice.id, bob.id, false).await.unwrap();
            }
            3 => {
                let c = store
                    .create_credential(alice.id, "p", "", "x", None)
                    .await
                    .unwrap();
                store.delete_credential(alice.id, c.id).await.unwrap();
            }
            _ => store.delete_user(bob.id).await.unwrap(),
        }
        let bumped = changed().await;
        assert!(bumped > last, "step {step}");
        last = bumped;
    }
});

both!(deleting_a_user_cascades, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    store
        .create_token(alice.id, "cli", "th1", "mt_abcd", None)
        .await
        .unwrap();
    store
        .create_credential(alice.id, "phone", "", "ch1", None)
        .await
        .unwrap();
    store
        .create_session("sh1", alice.id, "csrf", i64::MAX)
        .await
        .unwrap();
    store.create_share(alice.id, bob.id, false).await.unwrap();
    store.create_share(bob.id, alice.id, true).await.unwrap();

    store.delete_user(alice.id).await.unwrap();
    assert_eq!(store.token_by_hash("th1").await.unwrap(), None);
    assert_eq!(
        store.credential_by_hash(alice.id, "ch1").await.unwrap(),
        None
    );
    assert_eq!(store.session("sh1", 0).await.unwrap(), None);
    assert!(store.all_shares().await.unwrap().is_empty());
    assert!(matches!(
        store.delete_user(alice.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.user_by_id(bob.id).await.unwrap().is_some());
});

both!(tokens_and_credentials, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    let token = store
        .create_token(alice.id, "laptop", "hash-a", "mt_1234", Some(99))
        .await
        .unwrap();
    assert_eq!(
        (token.label.as_str(), token.prefix.as_str()),
        ("laptop", "mt_1234")
    );
    assert_eq!(token.expires_at, Some(99));
    assert_eq!(
        store.token_by_hash("hash-a").await.unwrap().as_ref(),
        Some(&token)
    );
    assert!(matches!(
        store.create_token(bob.id, "", "hash-a", "x", None).await,
        Err(StoreError::Conflict("token"))
    ));
    store.touch_token(token.id, 1234).await.unwrap();
    assert_eq!(
        store.tokens_of(alice.id).await.unwrap()[0].last_used_at,
        Some(1234)
    );
    assert!(store.tokens_of(bob.id).await.unwrap().is_empty());
    // Only the owner can delete it.
    assert!(matches!(
        store.delete_token(bob.id, token.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_token(alice.id, token.id).await.unwrap();
    assert_eq!(store.token_by_hash("hash-a").await.unwrap(), None);

    let phone = store
        .create_credential(alice.id, "phone", "Pixel", "c1", None)
        .await
        .unwrap();
    let tablet = store
        .create_credential(alice.id, "tablet", "", "c2", Some(5))
        .await
        .unwrap();
    assert_eq!(
        store.credentials_of(alice.id).await.unwrap(),
        [phone.clone(), tablet.clone()]
    );
    assert_eq!(
        store.credential_by_hash(alice.id, "c1").await.unwrap(),
        Some(phone.clone())
    );
    // A credential proves nothing for another user.
    assert_eq!(store.credential_by_hash(bob.id, "c1").await.unwrap(), None);
    store.touch_credential(phone.id, 77).await.unwrap();
    assert!(matches!(
        store.delete_credential(bob.id, phone.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_credential(alice.id, phone.id).await.unwrap();
    // Deleted (phone) or expired (tablet, at 5) credentials are unusable; unknown ids too.
    assert_eq!(
        store
            .unusable_credentials(&[phone.id, tablet.id, 999_999], 4)
            .await
            .unwrap(),
        vec![phone.id, 999_999]
    );
    assert_eq!(
        store.unusable_credentials(&[tablet.id], 5).await.unwrap(),
        vec![tablet.id]
    );
    assert_eq!(store.credentials_of(alice.id).await.unwrap(), [tablet]);
});

both!(sessions_expire_and_slide, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    let now = mytracks_store::now();
    let session = store
        .create_session("s1", alice.id, "tok", now + 10)
        .await
        .unwrap();
    assert_eq!(session.csrf_token, "tok");
    assert_eq!(store.session("s1", now).await.unwrap(), Some(session));
    assert_eq!(
        store.session("s1", now + 10).await.unwrap(),
        None,
        "expired"
    );
    store
        .extend_session("s1", now + 5, now + 100)
        .await
        .unwrap();
    assert_eq!(
        store
            .session("s1", now + 50)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        now + 5
    );

    store
        .create_session("s2", alice.id, "tok2", now + 100)
        .await
        .unwrap();
    store
        .create_session("s3", alice.id, "tok3", now + 1)
        .await
        .unwrap();
    assert_eq!(store.delete_expired_sessions(now + 2).await.unwrap(), 1);
    assert_eq!(
        store
            .delete_sessions_of(alice.id, Some("s2"))
            .await
            .unwrap(),
        1
    );
    assert!(store.session("s2", now).await.unwrap().is_some());
    store.delete_session("s2").await.unwrap();
    assert_eq!(store.session("s2", now).await.unwrap(), None);
});

both!(shares, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    let carol = store.create_user(&named("carol")).await.unwrap();
    let share = store.create_share(alice.id, bob.id, true).await.unwrap();
    assert!(share.history);
    assert!(matches!(
        store.create_share(alice.id, bob.id, false).await,
        Err(StoreError::Conflict("share"))
    ));
    assert!(
        store.create_share(alice.id, alice.id, false).await.is_err(),
        "not with oneself"
    );
    store.create_share(carol.id, alice.id, false).await.unwrap();

    let of_alice = store.shares_of(alice.id).await.unwrap();
    let pairs: Vec<(&str, &str)> = of_alice
        .iter()
        .map(|s| (s.owner.as_str(), s.viewer.as_str()))
        .collect();
    assert_eq!(pairs, [("alice", "bob"), ("carol", "alice")]);
    assert_eq!(store.shares_of(bob.id).await.unwrap().len(), 1);
    assert_eq!(store.all_shares().await.unwrap().len(), 2);

    // Carol is neither owner nor viewer of alice->bob.
    assert!(matches!(
        store.delete_share(carol.id, share.id).await,
        Err(StoreError::NotFound)
    ));
    // The viewer may end it.
    store.delete_share(bob.id, share.id).await.unwrap();
    assert_eq!(store.all_shares().await.unwrap().len(), 1);
});
