//! `devbox-gen validate [FILE...]`: read and validate, nothing rendered, nothing written.

use std::path::PathBuf;

use crate::diagnostic::Diagnostics;
use crate::pipeline::validate_boxes;
use crate::text::plural;
use crate::{Context, Outcome};

pub(super) fn run(context: &mut Context, files: &[PathBuf]) -> Result<Outcome, Diagnostics> {
    let only = (!files.is_empty()).then_some(files);
    // Resolving too finds what no layer provides (an image, a cluster among several); then
    // the boxes' totals are held to `[quota]`.
    let (boxes, warnings) = validate_boxes(&context.root, only)?;
    context.warn(warnings);
    if boxes.is_empty() && !files.is_empty() {
        context.status("devbox.toml is valid");
    } else {
        context.status(&plural(boxes.len(), "user file is valid", "user files are valid"));
    }
    Ok(Outcome::Clean)
}
