//! Import jobs (`imports`): their life from upload to end, who sees which, the bound per user,
//! the sweep of jobs a stopped server left, and removal with their user.

use super::*;
use mytracks_store::import_jobs::MAX_IMPORT_JOBS_PER_USER;
use mytracks_store::{ImportOutcome, ImportState, NewImportJob};

fn new_job(user_id: i64, device: &str, at: i64) -> NewImportJob {
    NewImportJob {
        user_id,
        device: device.into(),
        format: "auto".into(),
        filename: "Records (1).json".into(),
        dry_run: false,
        created_at: at,
    }
}

both!(a_job_goes_from_upload_to_done, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    let job = store
        .create_import_job(&NewImportJob {
            dry_run: true,
            ..new_job(alice.id, "phone", 1_000)
        })
        .await
        .unwrap();
    assert_eq!(job.state, ImportState::Uploading);
    assert_eq!(
        (job.device.as_str(), job.format.as_str()),
        ("phone", "auto")
    );
    assert_eq!(job.filename, "Records (1).json");
    assert!(job.dry_run);
    assert_eq!(
        (job.bytes_total, job.bytes_read, job.finished_at),
        (0, 0, None)
    );

    store.queue_import_job(job.id, 5_000).await.unwrap();
    let queued = store.import_job(job.id).await.unwrap().unwrap();
    assert_eq!(
        (queued.state, queued.bytes_total),
        (ImportState::Queued, 5_000)
    );

    // Progress only counts while running.
    store.import_job_progress(job.id, 9, 9, 9).await.unwrap();
    assert_eq!(
        store.import_job(job.id).await.unwrap().unwrap().bytes_read,
        0
    );
    store
        .start_import_job(job.id, "takeout-records")
        .await
        .unwrap();
    store
        .import_job_progress(job.id, 2_500, 40, 20)
        .await
        .unwrap();
    let running = store.import_job(job.id).await.unwrap().unwrap();
    assert_eq!(running.state, ImportState::Running);
    assert_eq!(running.format, "takeout-records");
    assert_eq!(
        (running.bytes_read, running.items, running.written),
        (2_500, 40, 20)
    );

    let summary = r#"{"valid":40,"stored":{"locations":40}}"#;
    let outcome = ImportOutcome {
        bytes_read: Some(5_000),
        summary: Some(summary),
        ..ImportOutcome::default()
    };
    assert!(store
        .finish_import_job(job.id, &outcome, 1_010)
        .await
        .unwrap());
    // Once ended, a job does not change any more.
    let again = ImportOutcome {
        failed: true,
        error: Some("late"),
        ..ImportOutcome::default()
    };
    assert!(!store
        .finish_import_job(job.id, &again, 1_020)
        .await
        .unwrap());
    let done = store.import_job(job.id).await.unwrap().unwrap();
    assert_eq!(done.state, ImportState::Done);
    assert!(done.state.is_finished());
    assert_eq!(done.summary.as_deref(), Some(summary));
    assert_eq!(
        (done.bytes_read, done.error, done.finished_at),
        (5_000, None, Some(1_010))
    );
    assert_eq!(store.unfinished_import_jobs(alice.id).await.unwrap(), 0);
});

both!(
    lists_are_per_user_newest_first_and_bounded,
    |store: Store| async move {
        let alice = store.create_user(&alice()).await.unwrap();
        let bob = store.create_user(&named("bob")).await.unwrap();
        let first = store
            .create_import_job(&new_job(alice.id, "a", 1))
            .await
            .unwrap();
        let second = store
            .create_import_job(&new_job(alice.id, "b", 2))
            .await
            .unwrap();
        let bobs = store
            .create_import_job(&new_job(bob.id, "c", 3))
            .await
            .unwrap();
        let listed: Vec<i64> = store
            .import_jobs(alice.id, 10)
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(listed, vec![second.id, first.id]);
        assert_eq!(store.import_jobs(alice.id, 1).await.unwrap().len(), 1);
        assert_eq!(store.import_jobs(bob.id, 10).await.unwrap()[0].id, bobs.id);
        assert_eq!(store.unfinished_import_jobs(alice.id).await.unwrap(), 2);
        assert!(store.import_job(bobs.id + 1_000).await.unwrap().is_none());

        // Beyond the bound the oldest finished jobs go; unfinished ones stay.
        let ended = ImportOutcome {
            failed: true,
            error: Some("x"),
            ..ImportOutcome::default()
        };
        store.finish_import_job(second.id, &ended, 5).await.unwrap();
        for at in 0..MAX_IMPORT_JOBS_PER_USER {
            let job = store
                .create_import_job(&new_job(alice.id, "d", 10 + at))
                .await
                .unwrap();
            store.finish_import_job(job.id, &ended, 20).await.unwrap();
        }
        let kept = store.import_jobs(alice.id, 1_000).await.unwrap();
        assert!(
            kept.iter().any(|j| j.id == first.id),
            "an unfinished job stays"
        );
        assert!(
            kept.iter().all(|j| j.id != second.id),
            "the oldest finished goes"
        );
        assert!(kept.len() as i64 <= MAX_IMPORT_JOBS_PER_USER + 1);
        assert_eq!(store.import_jobs(bob.id, 10).await.unwrap().len(), 1);
    }
);

both!(
    a_restart_fails_unfinished_jobs_and_a_deleted_user_takes_theirs,
    |store: Store| async move {
        let alice = store.create_user(&alice()).await.unwrap();
        let uploading = store
            .create_import_job(&new_job(alice.id, "a", 1))
            .await
            .unwrap();
        let running = store
            .create_import_job(&new_job(alice.id, "b", 2))
            .await
            .unwrap();
        store.queue_import_job(running.id, 10).await.unwrap();
        store.start_import_job(running.id, "gpx").await.unwrap();
        let done = store
            .create_import_job(&new_job(alice.id, "c", 3))
            .await
            .unwrap();
        store
            .finish_import_job(done.id, &ImportOutcome::default(), 4)
            .await
            .unwrap();
        let mut failed = store
            .fail_unfinished_import_jobs("the server restarted", 50)
            .await
            .unwrap();
        failed.sort_unstable();
        assert_eq!(failed, vec![uploading.id, running.id]);
        for id in [uploading.id, running.id] {
            let job = store.import_job(id).await.unwrap().unwrap();
            assert_eq!(job.state, ImportState::Failed);
            assert_eq!(job.error.as_deref(), Some("the server restarted"));
            assert_eq!(job.finished_at, Some(50));
        }
        assert_eq!(
            store.import_job(done.id).await.unwrap().unwrap().state,
            ImportState::Done
        );

        store.delete_user(alice.id).await.unwrap();
        assert!(store.import_job(done.id).await.unwrap().is_none());
    }
);
