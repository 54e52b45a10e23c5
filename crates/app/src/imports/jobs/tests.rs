//! The upload's bounds and the sweep at start, on a real SQLite store in a temporary data
//! directory (the background import itself is tested end to end in `tests/it/import_upload`).

use super::*;
use mytracks_store::{ImportState, NewUser};

async fn setup(limits: UploadLimits) -> (Arc<Imports>, User, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("db.sqlite3"))
        .await
        .unwrap();
    let user = store
        .create_user(&NewUser {
            username: "alice".into(),
            password_hash: "h".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let imports = Imports::open(store, dir.path(), limits, None, false)
        .await
        .unwrap();
    (imports, user, dir)
}

fn request(device: &str) -> UploadRequest {
    UploadRequest {
        device: device.into(),
        filename: "track.gpx".into(),
        ..UploadRequest::default()
    }
}

fn spooled_files(imports: &Imports) -> usize {
    std::fs::read_dir(imports.spool()).unwrap().count()
}

#[tokio::test]
async fn the_spool_is_private_and_bad_requests_are_refused_before_a_job_exists() {
    use std::os::unix::fs::PermissionsExt;
    let (imports, alice, _dir) = setup(UploadLimits::default()).await;
    let mode = std::fs::metadata(imports.spool())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    for device in ["", "a/b", "x+", &"d".repeat(101)] {
        let error = imports.begin(&alice, request(device)).await.err().unwrap();
        assert!(
            matches!(
                error,
                UploadError::Invalid {
                    field: "device",
                    ..
                }
            ),
            "{device:?}: {error}"
        );
    }
    let error = imports
        .begin(
            &alice,
            UploadRequest {
                format: Some("kml".into()),
                ..request("phone")
            },
        )
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            UploadError::Invalid {
                field: "format",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("gpx"), "{error}");
    assert!(imports.jobs(alice.id).await.unwrap().is_empty());

    let upload = imports.begin(&alice, request("phone")).await.unwrap();
    let file = imports.spool().join(format!("{}.part", upload.id()));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn over_the_size_limit_the_job_fails_and_the_file_goes() {
    let limits = UploadLimits {
        max_bytes: 1_000,
        ..UploadLimits::default()
    };
    let (imports, alice, _dir) = setup(limits).await;
    // Announced too large: refused before anything is created.
    let error = imports
        .begin(
            &alice,
            UploadRequest {
                declared_bytes: Some(1_001),
                ..request("phone")
            },
        )
        .await
        .err()
        .unwrap();
    assert!(matches!(error, UploadError::TooLarge(1_000)), "{error}");
    assert!(imports.jobs(alice.id).await.unwrap().is_empty());
    // Found too large while arriving.
    let mut upload = imports.begin(&alice, request("phone")).await.unwrap();
    upload.write(&[b'x'; 600]).await.unwrap();
    assert_eq!(spooled_files(&imports), 1);
    let error = upload.write(&[b'x'; 600]).await.unwrap_err();
    assert!(matches!(error, UploadError::TooLarge(1_000)), "{error}");
    assert_eq!(spooled_files(&imports), 0);
    let job = imports.job(upload.id()).await.unwrap().unwrap();
    assert_eq!(job.state, ImportState::Failed);
    drop(upload);
}

#[tokio::test]
async fn a_disk_too_full_is_refused() {
    let limits = UploadLimits {
        min_free_bytes: u64::MAX / 2,
        ..UploadLimits::default()
    };
    let (imports, alice, _dir) = setup(limits).await;
    let error = imports.begin(&alice, request("phone")).await.err().unwrap();
    assert!(matches!(error, UploadError::DiskFull(_)), "{error}");
    assert!(imports.jobs(alice.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_dropped_upload_fails_and_unfinished_jobs_are_bounded() {
    let (imports, alice, _dir) = setup(UploadLimits::default()).await;
    let mut uploads = Vec::new();
    for _ in 0..MAX_UNFINISHED_PER_USER {
        uploads.push(imports.begin(&alice, request("phone")).await.unwrap());
    }
    let error = imports.begin(&alice, request("phone")).await.err().unwrap();
    assert!(matches!(error, UploadError::Busy), "{error}");
    let mut gone = uploads.pop().unwrap();
    gone.write(b"<gpx").await.unwrap();
    let id = gone.id();
    drop(gone);
    assert_eq!(spooled_files(&imports), uploads.len());
    for _ in 0..100 {
        if imports.job(id).await.unwrap().unwrap().state == ImportState::Failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let job = imports.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, ImportState::Failed);
    assert!(job.error.unwrap().contains("did not complete"));
    // A place is free again.
    imports.begin(&alice, request("phone")).await.unwrap().ended = true;
}

#[tokio::test]
async fn a_restart_fails_what_was_left_and_empties_the_spool() {
    let (imports, alice, dir) = setup(UploadLimits::default()).await;
    let mut upload = imports.begin(&alice, request("phone")).await.unwrap();
    upload.write(b"<gpx").await.unwrap();
    let id = upload.id();
    // The process ends without the upload's end being recorded.
    upload.ended = true;
    drop(upload);
    std::fs::write(imports.spool().join("stray"), b"x").unwrap();
    let store = imports.store.clone();
    let reopened = Imports::open(store, dir.path(), UploadLimits::default(), None, false)
        .await
        .unwrap();
    assert_eq!(spooled_files(&reopened), 0);
    let job = reopened.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, ImportState::Failed);
    assert_eq!(job.error.as_deref(), Some(RESTARTED));
}

#[tokio::test]
async fn uploads_started_together_keep_to_the_per_user_limit() {
    let (imports, alice, _dir) = setup(UploadLimits::default()).await;
    // Polled together: every count would run before any job exists without the lock.
    let started = futures_util::future::join_all(
        (0..MAX_UPLOADS).map(|_| imports.begin(&alice, request("phone"))),
    )
    .await;
    let started = started.len() - started.iter().filter(|s| s.is_err()).count();
    assert_eq!(started, MAX_UNFINISHED_PER_USER as usize);
}

#[tokio::test]
async fn uploads_arriving_at_once_are_limited_on_the_server() {
    let (imports, alice, _dir) = setup(UploadLimits::default()).await;
    let mut uploads = Vec::new();
    for i in 0..MAX_UPLOADS {
        let user = imports
            .store
            .create_user(&NewUser {
                username: format!("user{i}"),
                password_hash: "h".into(),
                ..NewUser::default()
            })
            .await
            .unwrap();
        uploads.push(imports.begin(&user, request("phone")).await.unwrap());
    }
    let error = imports.begin(&alice, request("phone")).await.err().unwrap();
    assert!(matches!(error, UploadError::ServerBusy), "{error}");
    assert!(imports.jobs(alice.id).await.unwrap().is_empty());
    drop(uploads.pop());
    imports.begin(&alice, request("phone")).await.unwrap();
}

#[tokio::test]
async fn uploads_arriving_together_count_each_others_grants_against_the_reserve() {
    static FREE: AtomicU64 = AtomicU64::new(0);
    let (mut imports, alice, _dir) = setup(UploadLimits::default()).await;
    Arc::get_mut(&mut imports).unwrap().free_space = |_| Ok(FREE.load(Ordering::Relaxed));
    let reserve = DEFAULT_MIN_FREE_BYTES;
    let grant = FREE_SPACE_CHECK_BYTES;
    // Room for two grants and a half.
    FREE.store(reserve + 2 * grant + grant / 2, Ordering::Relaxed);
    let first = imports.begin(&alice, request("phone")).await.unwrap();
    let mut second = imports.begin(&alice, request("phone")).await.unwrap();
    let error = imports.begin(&alice, request("phone")).await.err().unwrap();
    assert!(matches!(error, UploadError::DiskFull(_)), "{error}");
    drop(first);
    // Within its grant, an upload writes without asking; past it, it asks again, and the
    // disk filled meanwhile (the other upload's grant counts).
    let third = imports.begin(&alice, request("phone")).await.unwrap();
    second.write(&vec![b'x'; grant as usize]).await.unwrap();
    FREE.store(reserve + grant + grant / 2, Ordering::Relaxed);
    let error = second.write(b"x").await.unwrap_err();
    assert!(matches!(error, UploadError::DiskFull(_)), "{error}");
    drop((second, third));
    assert_eq!(*lock(&imports.granted), 0);
}
