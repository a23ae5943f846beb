//! The store's behaviour through its public API: layout, import of each source kind, dedup, the
//! no-copy path, rm/gc/pin, the budget, verification and crash leftovers.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;
use porten_storage::{Error, FileOutcome, ImportMode, Problem, WeightFormat};

#[test]
fn a_gguf_import_links_the_file_into_the_versioned_layout_and_reads_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.Q8_0.gguf");
    write_gguf(&gguf, b"");
    let store = open_store(&dir.path().join("store"), None);
    let report = import(&store, &gguf, "tiny", ImportMode::Link).unwrap();

    let blob = report.manifest.files[0].blake3;
    let hex = blob.hex();
    assert_eq!(
        hex,
        blake3::hash(&std::fs::read(&gguf).unwrap())
            .to_hex()
            .as_str()
    );
    let blob_path = dir
        .path()
        .join(format!("store/blobs-v1/blake3/{}/{hex}", &hex[..2]));
    assert!(blob_path.is_file());
    assert!(dir
        .path()
        .join("store/manifests-v1/tiny/latest.json")
        .is_file());
    assert_eq!(
        report.files,
        vec![("tiny.Q8_0.gguf".to_string(), FileOutcome::HardLinked)]
    );
    assert_eq!(
        std::fs::metadata(&blob_path).unwrap().ino(),
        std::fs::metadata(&gguf).unwrap().ino(),
        "same filesystem: no bytes copied"
    );
    let meta = &report.manifest.metadata;
    assert_eq!(meta.format, WeightFormat::Gguf);
    assert_eq!(meta.architecture.as_deref(), Some("llama"));
    assert_eq!(meta.parameter_count, Some(32 * 8 + 64 * 4));
    assert_eq!(meta.quantization.as_deref(), Some("Q8_0"));
    assert_eq!(
        (
            meta.context_length,
            meta.layers,
            meta.kv_heads,
            meta.head_dim
        ),
        (Some(2048), Some(2), Some(2), Some(8))
    );
    assert_eq!(meta.tensor_bytes, 32 * 8 * 4 + 8 * 34);
}

#[test]
fn copy_mode_owns_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("m.gguf");
    write_gguf(&gguf, &[7; 100_000]);
    let store = open_store(&dir.path().join("store"), None);
    let report = import(&store, &gguf, "m:copy", ImportMode::Copy).unwrap();
    assert_eq!(report.files[0].1, FileOutcome::Copied);
    let blob = &blob_files(&dir.path().join("store"))[0];
    assert_ne!(
        std::fs::metadata(blob).unwrap().ino(),
        std::fs::metadata(&gguf).unwrap().ino()
    );
    assert_eq!(std::fs::read(blob).unwrap(), std::fs::read(&gguf).unwrap());
    assert!(std::fs::metadata(blob).unwrap().permissions().readonly());
}

#[test]
fn two_models_sharing_a_tokenizer_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    write_safetensors_dir(&dir.path().join("a"), 1, 4096, "{\"shared\": true}");
    write_safetensors_dir(&dir.path().join("b"), 2, 4096, "{\"shared\": true}");
    let store = open_store(&dir.path().join("store"), None);
    import(&store, &dir.path().join("a"), "a", ImportMode::Copy).unwrap();
    let b = import(&store, &dir.path().join("b"), "b", ImportMode::Copy).unwrap();
    let outcome = |name: &str| b.files.iter().find(|(f, _)| f == name).unwrap().1;
    assert_eq!(outcome("tokenizer.json"), FileOutcome::AlreadyStored);
    assert_eq!(
        outcome("config.json"),
        FileOutcome::AlreadyStored,
        "identical config too"
    );
    assert_eq!(outcome("model.safetensors"), FileOutcome::Copied);
    assert_eq!(
        blob_files(&dir.path().join("store")).len(),
        4,
        "2 weights + shared config + shared tokenizer"
    );
    let meta = &b.manifest.metadata;
    assert_eq!(meta.format, WeightFormat::Safetensors);
    assert_eq!(
        (meta.parameter_count, meta.quantization.as_deref()),
        (Some(2048), Some("BF16"))
    );
}

#[test]
fn a_hugging_face_snapshot_imports_through_its_symlinks_and_keeps_the_sha256() {
    let dir = tempfile::tempdir().unwrap();
    write_safetensors_dir(&dir.path().join("src"), 3, 2048, "{}");
    let snapshot = write_hf_snapshot(
        &dir.path().join("hub"),
        "org",
        "tiny",
        &dir.path().join("src"),
    );
    let store = open_store(&dir.path().join("store"), None);
    for path in [snapshot.clone(), dir.path().join("hub/models--org--tiny")] {
        let report = import(&store, &path, "org/tiny", ImportMode::Link).unwrap();
        let names: Vec<&str> = report
            .manifest
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(
            names,
            ["config.json", "model.safetensors", "tokenizer.json"]
        );
        for file in &report.manifest.files {
            let sha = file
                .sha256
                .as_deref()
                .expect("the cache names blobs by sha256");
            assert_eq!(sha.len(), 64);
        }
    }
    assert_eq!(
        porten_storage::source::scan(&snapshot)
            .unwrap()
            .suggested_name,
        "org/tiny"
    );
}

#[test]
fn rm_drops_only_unshared_blobs_pin_blocks_it_and_gc_collects_strays() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    write_safetensors_dir(&dir.path().join("a"), 1, 4096, "tok");
    write_safetensors_dir(&dir.path().join("b"), 2, 4096, "tok");
    let store = open_store(&root, None);
    import(&store, &dir.path().join("a"), "a", ImportMode::Copy).unwrap();
    import(&store, &dir.path().join("b"), "b", ImportMode::Copy).unwrap();

    store.set_pinned(&model("a"), true).unwrap();
    assert!(matches!(
        store.remove(&model("a"), false),
        Err(Error::ModelBusy { .. })
    ));
    store.set_pinned(&model("a"), false).unwrap();
    let freed = store.remove(&model("a"), false).unwrap();
    assert!(freed >= 4096, "a's weights go");
    assert_eq!(
        blob_files(&root).len(),
        3,
        "b's weights, config and tokenizer stay"
    );
    assert!(store.checkout(&model("b")).is_ok());
    assert!(matches!(
        store.remove(&model("a"), false),
        Err(Error::ModelNotFound(_))
    ));

    let stray = blake3::hash(b"stray");
    let fan = root.join("blobs-v1/blake3").join(&stray.to_hex()[..2]);
    std::fs::create_dir_all(&fan).unwrap();
    std::fs::write(fan.join(stray.to_hex().as_str()), b"stray").unwrap();
    let report = store.gc().unwrap();
    assert_eq!((report.blobs_removed, report.bytes_freed), (1, 5));
    assert_eq!(blob_files(&root).len(), 3);
}

#[test]
fn the_budget_evicts_the_least_recently_used_but_never_pinned_or_loaded_models() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    for (i, name) in ["old", "pinned", "loaded", "new"].iter().enumerate() {
        write_gguf(
            &dir.path().join(format!("{name}.gguf")),
            &vec![i as u8 + 1; 10_000],
        );
    }
    let size = std::fs::metadata(dir.path().join("old.gguf"))
        .unwrap()
        .len();
    let store = open_store(&root, Some(size * 3 + size / 2));
    for name in ["old", "pinned", "loaded"] {
        import(
            &store,
            &dir.path().join(format!("{name}.gguf")),
            name,
            ImportMode::Copy,
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    store.set_pinned(&model("pinned"), true).unwrap();
    let _held = store.checkout(&model("loaded")).unwrap();
    // Room for "new" can only come from "old": the others are pinned and loaded.
    import(
        &store,
        &dir.path().join("new.gguf"),
        "new",
        ImportMode::Copy,
    )
    .unwrap();
    let names = model_names(&store);
    assert_eq!(names, ["loaded", "new", "pinned"]);
    assert!(store.disk_usage().unwrap().used <= size * 3 + size / 2);

    // Nothing evictable is left ("new" aside), and a model bigger than what could be freed fails
    // up front, evicting nothing.
    let huge = dir.path().join("huge.gguf");
    write_gguf(&huge, &vec![9; 30_000]);
    let err = import(&store, &huge, "huge", ImportMode::Copy).unwrap_err();
    match err {
        Error::NoRoom {
            needed, freeable, ..
        } => {
            assert!(needed > 30_000);
            assert_eq!(freeable, size, "only `new` could go");
        }
        other => panic!("expected NoRoom, got {other}"),
    }
    assert_eq!(
        store.list().unwrap().len(),
        3,
        "nothing was evicted for nothing"
    );
}

#[test]
fn lru_order_follows_use_not_import_order() {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        write_gguf(
            &dir.path().join(format!("{name}.gguf")),
            &vec![i as u8 + 1; 10_000],
        );
    }
    let size = std::fs::metadata(dir.path().join("a.gguf")).unwrap().len();
    let store = open_store(&dir.path().join("store"), Some(size * 2));
    import(&store, &dir.path().join("a.gguf"), "a", ImportMode::Link).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    import(&store, &dir.path().join("b.gguf"), "b", ImportMode::Link).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    drop(store.checkout(&model("a")).unwrap()); // a is now the most recently used
    import(&store, &dir.path().join("c.gguf"), "c", ImportMode::Link).unwrap();
    let names = model_names(&store);
    assert_eq!(names, ["a", "c"], "b was the least recently used");
}

#[test]
fn a_flipped_byte_is_caught_by_verify_and_by_checkout_and_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let gguf = dir.path().join("m.gguf");
    write_gguf(&gguf, &[1; 5000]);
    let store = open_store(&root, None);
    import(&store, &gguf, "m", ImportMode::Copy).unwrap();
    assert!(store.verify(None).unwrap().problems.is_empty());

    let blob = blob_files(&root).remove(0);
    flip_a_byte(&blob, 3000);
    let fresh = open_store(&root, None); // a new process has no memory of earlier checks
    let report = fresh.verify(None).unwrap();
    assert!(
        matches!(&report.problems[..], [Problem::Corrupt { models, .. }] if models == &["m:latest"])
    );
    assert!(
        blob_files(&root).is_empty(),
        "quarantined, not left where it could be served"
    );
    assert_eq!(
        std::fs::read_dir(root.join("quarantine-v1"))
            .unwrap()
            .count(),
        1
    );
    assert!(matches!(
        fresh.checkout(&model("m")),
        Err(Error::MissingBlob { .. })
    ));

    // A re-import heals the model; corruption found at checkout is refused the same way.
    import(&fresh, &gguf, "m", ImportMode::Copy).unwrap();
    assert!(fresh.checkout(&model("m")).is_ok());
    flip_a_byte(&blob_files(&root).remove(0), 10);
    let fresh = open_store(&root, None);
    let err = fresh.checkout(&model("m")).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

fn flip_a_byte(path: &std::path::Path, at: usize) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn opening_the_store_removes_what_a_dead_process_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    drop(open_store(&root, None));
    let dead = root.join("tmp-v1/dead-session");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("lock"), b"").unwrap();
    std::fs::write(dead.join("blob-partial"), vec![0u8; 1000]).unwrap();
    std::fs::write(
        dead.join("books.json"),
        br#"{"reserved":999999,"protected":{},"leases":{}}"#,
    )
    .unwrap();
    let store = open_store(&root, Some(10_000));
    assert!(!dead.exists());
    assert_eq!(
        store.disk_usage().unwrap().reserved,
        0,
        "a dead process's reservation is void"
    );
}

#[test]
fn a_live_process_reservation_counts_against_the_budget_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let first = open_store(&root, Some(50_000));
    let second = open_store(&root, Some(50_000));
    let (held, _) = first.reserve(&[], 40_000, false, None).unwrap();
    let gguf = dir.path().join("m.gguf");
    write_gguf(&gguf, &[1; 20_000]);
    assert!(matches!(
        import(&second, &gguf, "m", ImportMode::Copy),
        Err(Error::NoRoom { .. })
    ));
    drop(held);
    import(&second, &gguf, "m", ImportMode::Copy).unwrap();
}

#[test]
fn concurrent_imports_of_the_same_file_write_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("m.gguf");
    write_gguf(&gguf, &vec![5; 20 << 20]);
    let store = open_store(&dir.path().join("store"), None);
    let outcomes: Vec<FileOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let (store, gguf) = (&store, &gguf);
                s.spawn(move || {
                    import(store, gguf, &format!("m{i}"), ImportMode::Copy)
                        .unwrap()
                        .files[0]
                        .1
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == FileOutcome::Copied)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(blob_files(&dir.path().join("store")).len(), 1);
}

#[test]
fn broken_sources_are_refused_without_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = open_store(&root, None);
    let not_gguf = dir.path().join("x.gguf");
    std::fs::write(&not_gguf, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let err = import(&store, &not_gguf, "x", ImportMode::Link).unwrap_err();
    assert!(
        err.to_string().contains("not a readable GGUF file"),
        "{err}"
    );
    let err = import(&store, &dir.path().join("nope"), "x", ImportMode::Link).unwrap_err();
    assert!(matches!(err, Error::BadSource { .. }), "{err}");
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    assert!(import(&store, &dir.path().join("empty"), "x", ImportMode::Link).is_err());
    assert!(blob_files(&root).is_empty());
    assert!(store.list().unwrap().is_empty());
}

/// An interrupted download's partial file counts against the budget and is the first thing
/// freed when room is short; while a pull's reservation protects it, it is part of that
/// reservation instead (counted once), and `gc` leaves it alone.
#[test]
fn partial_downloads_count_in_the_budget_once_and_stale_ones_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = open_store(&root, Some(50_000));
    let id: porten_storage::BlobId = blake3::hash(b"some blob").into();
    let partial = store.layout().partial(&id);
    std::fs::write(&partial, vec![7u8; 30_000]).unwrap();
    let usage = store.disk_usage().unwrap();
    assert_eq!((usage.used, usage.garbage), (30_000, 30_000));

    // A pull resuming it reserves the whole blob; the partial is inside that reservation.
    let (held, present) = store
        .reserve_download(&[(id, 45_000)], &model("m"))
        .unwrap();
    assert!(present.is_empty());
    let usage = store.disk_usage().unwrap();
    assert_eq!((usage.used, usage.reserved), (0, 45_000));
    assert_eq!(store.gc().unwrap().bytes_freed, 0);
    assert!(partial.exists(), "gc must not take a protected partial");
    drop(held);

    // Stale again: an import that needs the room deletes it instead of failing.
    let gguf = dir.path().join("m.gguf");
    write_gguf(&gguf, &[1; 30_000]);
    import(&store, &gguf, "m", ImportMode::Copy).unwrap();
    assert!(!partial.exists());
}

#[test]
fn a_copy_names_the_same_blobs_twice_and_removing_one_keeps_the_other_whole() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("m.gguf");
    write_gguf(&gguf, &[3; 50_000]);
    let store = open_store(&dir.path().join("store"), None);
    import(&store, &gguf, "m", ImportMode::Copy).unwrap();
    let from = porten_storage::ModelRef::parse("m").unwrap();
    let to = porten_storage::ModelRef::parse("m:second").unwrap();
    let copy = store.copy(&from, &to).unwrap();
    assert_eq!(copy.files, store.manifest(&from).unwrap().files);
    assert_eq!(
        blob_files(&dir.path().join("store")).len(),
        1,
        "no bytes copied"
    );
    assert!(matches!(
        store.copy(&from, &to),
        Err(Error::ModelBusy { .. })
    ));
    store.remove(&from, false).unwrap();
    assert_eq!(blob_files(&dir.path().join("store")).len(), 1);
    store.checkout(&to).unwrap();
    assert!(store.verify(None).unwrap().problems.is_empty());
}
