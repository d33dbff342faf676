//! `devbox-gen validate [FILE...]`: read and validate, nothing rendered, nothing written.

use std::path::PathBuf;

use crate::diagnostic::Diagnostics;
use crate::read;
use crate::{Context, Outcome};

pub fn run(context: &mut Context, files: &[PathBuf]) -> Result<Outcome, Diagnostics> {
    let only = (!files.is_empty()).then_some(files);
    let (repo, mut found) = read::read_selected(&context.root, only)?;
    found.extend(crate::validate::validate(&repo));
    if found.has_errors() {
        return Err(found);
    }
    context.warn(found);
    // Resolving finds what no layer provides (an image, a cluster among several).
    crate::resolve::resolve(&repo)?;
    context.status(&format!("{} user files are valid", repo.users.len()));
    Ok(Outcome::Clean)
}
