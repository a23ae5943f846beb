//! A property test of the disk budget: random batches of concurrent imports, pins, loads and
//! removals never take the store over its budget (sampled from the disk while they run), never
//! evict a pinned or loaded model, and leave every manifest's blobs present.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use common::*;
use porten_storage::{Checkout, Error, ImportMode, Store};
use proptest::prelude::*;

const BUDGET: u64 = 48 * 1024;
const MODELS: u8 = 5;
const SIZES: [usize; 4] = [4 * 1024, 9 * 1024, 15 * 1024, 60 * 1024];

#[derive(Debug, Clone)]
enum Op {
    Import { model: u8, size: usize, copy: bool },
    Pin(u8),
    Unpin(u8),
    Load(u8),
    Unload(u8),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let m = 0..MODELS;
    prop_oneof![
        4 => (m.clone(), 0..SIZES.len(), any::<bool>())
            .prop_map(|(model, s, copy)| Op::Import { model, size: SIZES[s], copy }),
        1 => m.clone().prop_map(Op::Pin),
        1 => m.clone().prop_map(Op::Unpin),
        1 => m.clone().prop_map(Op::Load),
        1 => m.clone().prop_map(Op::Unload),
        1 => m.prop_map(Op::Remove),
    ]
}

fn name(m: u8) -> String {
    format!("m{m}")
}

/// Bytes on disk that the budget covers: blobs and blob temp files being written (manifests and
/// links are metadata, outside the budget). Counted once per inode, so a file renamed from temp
/// to blob while the scan runs, or hard-linked into both, is not counted twice.
fn disk_bytes(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashMap::new();
    let mut stack = vec![root.join("blobs-v1"), root.join("tmp-v1")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let file = entry.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file()
                && (dir.starts_with(root.join("blobs-v1")) || file.starts_with("blob-"))
            {
                seen.insert((meta.dev(), meta.ino()), meta.len());
            }
        }
    }
    seen.values().sum()
}

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sources: HashMap<(u8, usize), PathBuf>,
    store: std::sync::Arc<Store>,
    loaded: Mutex<HashMap<u8, Vec<Checkout>>>,
    pinned: Mutex<BTreeSet<u8>>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = HashMap::new();
        for m in 0..MODELS {
            for size in SIZES {
                let path = dir.path().join(format!("src-{m}-{size}"));
                write_safetensors_dir(&path, m * 7 + (size / 1024) as u8, size, "shared tokenizer");
                sources.insert((m, size), path);
            }
        }
        let root = dir.path().join("store");
        let store = open_store(&root, Some(BUDGET));
        Self {
            _dir: dir,
            root,
            sources,
            store,
            loaded: Mutex::default(),
            pinned: Mutex::default(),
        }
    }

    fn run(&self, op: &Op) {
        let m = |i: u8| model(&name(i));
        match op {
            Op::Import {
                model: i,
                size,
                copy,
            } => {
                let mode = if *copy {
                    ImportMode::Copy
                } else {
                    ImportMode::Link
                };
                match import(&self.store, &self.sources[&(*i, *size)], &name(*i), mode) {
                    Ok(_) | Err(Error::NoRoom { .. }) => {}
                    Err(e) => panic!("import failed: {e}"),
                }
            }
            Op::Pin(i) | Op::Unpin(i) => {
                let pin = matches!(op, Op::Pin(_));
                match self.store.set_pinned(&m(*i), pin) {
                    Ok(()) => {
                        let mut pinned = self.pinned.lock().unwrap();
                        if pin {
                            pinned.insert(*i)
                        } else {
                            pinned.remove(i)
                        };
                    }
                    Err(Error::ModelNotFound(_)) => {}
                    Err(e) => panic!("pin failed: {e}"),
                }
            }
            Op::Load(i) => match self.store.checkout(&m(*i)) {
                Ok(c) => self.loaded.lock().unwrap().entry(*i).or_default().push(c),
                Err(Error::ModelNotFound(_)) => {}
                Err(e) => panic!("checkout failed: {e}"),
            },
            Op::Unload(i) => {
                self.loaded.lock().unwrap().get_mut(i).and_then(Vec::pop);
            }
            Op::Remove(i) => match self.store.remove(&m(*i), false) {
                Ok(_) => {
                    self.pinned.lock().unwrap().remove(i);
                }
                Err(Error::ModelNotFound(_) | Error::ModelBusy { .. }) => {}
                Err(e) => panic!("remove failed: {e}"),
            },
        }
    }

    /// Models that must survive a batch: pinned or loaded at its start and not unpinned,
    /// unloaded or removed by it.
    fn protected(&self, batch: &[Op]) -> BTreeSet<u8> {
        let touched: BTreeSet<u8> = batch
            .iter()
            .filter_map(|op| match op {
                Op::Unpin(i) | Op::Unload(i) | Op::Remove(i) => Some(*i),
                _ => None,
            })
            .collect();
        let loaded = self.loaded.lock().unwrap();
        let pinned = self.pinned.lock().unwrap();
        (0..MODELS)
            .filter(|i| pinned.contains(i) || loaded.get(i).is_some_and(|v| !v.is_empty()))
            .filter(|i| !touched.contains(i))
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_budget_holds_under_concurrent_operations(
        batches in prop::collection::vec(prop::collection::vec(op(), 1..5), 1..8)
    ) {
        let world = World::new();
        for batch in &batches {
            let must_survive = world.protected(batch);
            let peak = AtomicU64::new(0);
            let done = AtomicBool::new(false);
            std::thread::scope(|s| {
                s.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        peak.fetch_max(disk_bytes(&world.root), Ordering::Relaxed);
                        std::thread::yield_now();
                    }
                });
                let workers: Vec<_> = batch.iter().map(|op| s.spawn(|| world.run(op))).collect();
                for w in workers {
                    w.join().unwrap();
                }
                done.store(true, Ordering::Relaxed);
            });
            let peak = peak.load(Ordering::Relaxed).max(disk_bytes(&world.root));
            prop_assert!(peak <= BUDGET, "{peak} bytes on disk over a {BUDGET}-byte budget");
            let manifests = world.store.manifests().unwrap();
            for i in must_survive {
                prop_assert!(manifests.contains_key(&model(&name(i))), "m{i} was pinned or loaded, and evicted");
            }
            for manifest in manifests.values() {
                for file in &manifest.files {
                    prop_assert!(
                        world.store.layout().blob(&file.blake3).is_file(),
                        "{} lists a missing blob for {}", manifest.model, file.path
                    );
                }
            }
        }
        world.loaded.lock().unwrap().clear();
    }
}
