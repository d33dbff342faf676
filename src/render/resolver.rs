//! Imports for templates: `devbox-gen/...` comes from the files compiled into the binary, so a
//! custom template can `import 'devbox-gen/devbox.libsonnet'` and extend the default; anything
//! else is a file, relative to the importing file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jrsonnet_evaluator::{AsPathLike, FileImportResolver, ImportResolver, ResolvePath, Result, SourcePath, SourceVirtual};
use jrsonnet_gcmodule::Acyclic;

/// Import prefix of the embedded library.
pub(crate) const EMBEDDED_PREFIX: &str = "devbox-gen/";

/// How the message of an import refused by [`Resolver`] starts, before the path.
pub(crate) const REFUSED_IMPORT: &str = "cannot import ";

/// The embedded template files, by import path.
pub(crate) const EMBEDDED: &[(&str, &str)] = &[
    ("devbox-gen/default.jsonnet", include_str!("template/default.jsonnet")),
    ("devbox-gen/devbox.libsonnet", include_str!("template/devbox.libsonnet")),
    ("devbox-gen/start.sh", include_str!("template/start.sh")),
    ("devbox-gen/sshd_config", include_str!("template/sshd_config")),
    ("devbox-gen/profile.sh", include_str!("template/profile.sh")),
    ("devbox-gen/idle.py", include_str!("template/idle.py")),
    ("devbox-gen/idle-stop.sh", include_str!("template/idle-stop.sh")),
];

/// Every file a template read through [`Resolver`] in this process: what the build cache must
/// watch, since jsonnet reads nothing else.
static IMPORTED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// The files templates have imported so far (the template itself included).
pub(crate) fn imported() -> BTreeSet<PathBuf> {
    IMPORTED.lock().map(|files| files.clone()).unwrap_or_default()
}

/// Paths an import looked for, in search order, before the file it found: a file created at
/// one of them later shadows that file, so the build cache must watch that they stay absent.
static PASSED_OVER: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// The paths imports looked for and did not find before the file each resolved to.
pub(crate) fn passed_over() -> BTreeSet<PathBuf> {
    PASSED_OVER.lock().map(|paths| paths.clone()).unwrap_or_default()
}

#[derive(Acyclic)]
pub(super) struct Resolver {
    files: FileImportResolver,
    library: Vec<PathBuf>,
}

impl Resolver {
    pub(super) fn new(root: &Path) -> Self {
        // `lib/` and `vendor/` in the config repo are searched like Tanka's jpath.
        let library = vec![root.join("lib"), root.join("vendor")];
        Self { files: FileImportResolver::new(library.clone()), library }
    }

    /// Records the places jrsonnet's `FileImportResolver` tries before `found`, in its order:
    /// the importing file's directory, then each library directory.
    fn record_passed_over(&self, from: &SourcePath, path: &Path, found: &SourcePath) {
        let Some(found) = found.path() else { return };
        if path.is_absolute() {
            return;
        }
        let direct = from.path().and_then(Path::parent).map(|dir| dir.join(path));
        let candidates = direct.into_iter().chain(self.library.iter().map(|dir| dir.join(path)));
        let before: Vec<PathBuf> = candidates.take_while(|candidate| candidate.as_path() != found).collect();
        if let Ok(mut passed) = PASSED_OVER.lock() {
            passed.extend(before.into_iter().filter(|candidate| candidate.symlink_metadata().is_err()));
        }
    }
}

pub(super) fn embedded(name: &str) -> Option<&'static str> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

impl ImportResolver for Resolver {
    fn resolve_from(&self, from: &SourcePath, path: &dyn AsPathLike) -> Result<SourcePath> {
        let requested = match path.as_path() {
            ResolvePath::Str(s) => Some(s.to_string()),
            ResolvePath::Path(p) => p.to_str().map(str::to_string),
        };
        if let Some(name) = requested.as_deref() {
            if embedded(name).is_some() {
                return Ok(SourcePath::new(SourceVirtual(name.into())));
            }
            // Relative imports inside the embedded library stay inside it.
            if from.downcast_ref::<SourceVirtual>().is_some() {
                let sibling = format!("{EMBEDDED_PREFIX}{name}");
                if embedded(&sibling).is_some() {
                    return Ok(SourcePath::new(SourceVirtual(sibling.into())));
                }
            }
        }
        if from.downcast_ref::<SourceVirtual>().is_some() {
            return self.files.resolve_from_default(path);
        }
        // What an absolute path names differs from machine to machine (rule 2: the same input,
        // the same bytes, in every checkout and CI job).
        if let Some(name) = requested.as_deref().filter(|name| Path::new(name).is_absolute() && from.path().is_some()) {
            jrsonnet_evaluator::bail!(
                "{REFUSED_IMPORT}{name}: an absolute path makes the build depend on the machine; import it relative to the template, or from the config repo's lib/ or vendor/"
            );
        }
        let found = self.files.resolve_from(from, path)?;
        if let Some(name) = requested {
            self.record_passed_over(from, Path::new(&name), &found);
        }
        Ok(found)
    }

    fn load_file_contents(&self, resolved: &SourcePath) -> Result<Vec<u8>> {
        if let Some(virtual_path) = resolved.downcast_ref::<SourceVirtual>()
            && let Some(text) = embedded(&virtual_path.0)
        {
            return Ok(text.as_bytes().to_vec());
        }
        if let Some(path) = resolved.path()
            && let Ok(mut files) = IMPORTED.lock()
        {
            files.insert(path.to_path_buf());
        }
        self.files.load_file_contents(resolved)
    }
}
