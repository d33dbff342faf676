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

/// Why an import outside the config repo is refused, as its message and its label say.
pub(crate) const OUTSIDE: &str = "outside the repository";

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
    /// The Git repository holding the config repo (or the config repo, outside Git), links
    /// resolved: nothing outside it may be imported.
    bound: PathBuf,
}

impl Resolver {
    pub(super) fn new(root: &Path) -> Self {
        // `lib/` and `vendor/` in the config repo are searched like Tanka's jpath.
        let library = vec![root.join("lib"), root.join("vendor")];
        // A config repo may be a directory of a larger Git repository and share its jsonnet
        // with the rest of it; Git's top is what every checkout has in common.
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let bound = root.ancestors().find(|dir| dir.join(".git").symlink_metadata().is_ok()).unwrap_or(&root).to_path_buf();
        Self { files: FileImportResolver::new(library.clone()), library, bound }
    }

    /// Whether a file an import found is inside the Git repository (or the config repo, outside
    /// Git), once `..` and links are resolved.
    fn inside(&self, found: &SourcePath) -> bool {
        found.path().is_none_or(|path| {
            path.canonicalize().is_ok_and(|path| {
                // Git's own directory is no template's: its config holds the CI job's token
                // (actions/checkout's extraheader, a GitLab runner's remote URL).
                path.starts_with(&self.bound)
                    && !path.strip_prefix(&self.bound).is_ok_and(|rest| rest.components().any(|c| c.as_os_str() == ".git"))
            })
        })
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
        let found = if from.downcast_ref::<SourceVirtual>().is_some() {
            self.files.resolve_from_default(path)?
        } else {
            self.resolve_file(from, path, requested.as_deref())?
        };
        // A template that reads outside the repository depends on the machine, and could copy
        // the CI runner's files (`../../proc/self/environ`) into out/ and the PR's diff.
        if !self.inside(&found) {
            jrsonnet_evaluator::bail!(
                "{REFUSED_IMPORT}{}: it is {OUTSIDE}, and a build reads only the Git repository that holds the config repo (the config repo, outside Git), never its .git/; copy the file into it (lib/ or vendor/, say)",
                requested.as_deref().unwrap_or("the file")
            );
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

impl Resolver {
    /// A file import from a file of the config repo: relative to it, then in lib/ and vendor/.
    fn resolve_file(&self, from: &SourcePath, path: &dyn AsPathLike, requested: Option<&str>) -> Result<SourcePath> {
        // What an absolute path names differs from machine to machine (rule 2: the same input,
        // the same bytes, in every checkout and CI job).
        if let Some(name) = requested.filter(|name| Path::new(name).is_absolute() && from.path().is_some()) {
            jrsonnet_evaluator::bail!(
                "{REFUSED_IMPORT}{name}: an absolute path makes the build depend on the machine; import it relative to the template, or from the config repo's lib/ or vendor/"
            );
        }
        let found = self.files.resolve_from(from, path)?;
        if let Some(name) = requested {
            self.record_passed_over(from, Path::new(name), &found);
        }
        Ok(found)
    }
}
