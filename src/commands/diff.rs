//! `devbox-gen diff [--base REF] [--format text|markdown|json]`: compile users/ in memory and
//! say what that changes compared with the committed `out/` (on disk, or at REF through git):
//! the risks first, then a diff per resource. Writes nothing. Refuses, like `build`, what
//! Kubernetes cannot apply.

use std::io::{IsTerminal, Write};

use codespan_reporting::term::termcolor::{BufferWriter, ColorChoice};

use crate::cache::BuildCache;
use crate::cli::Format;
use crate::diagnostic::Diagnostics;
use crate::diff::render::{self, Baseline};
use crate::diff::{self, git};
use crate::pipeline::compile;
use crate::{Context, Outcome, check, write};

pub fn run(context: &mut Context, base: Option<&str>, format: Format) -> Result<Outcome, Diagnostics> {
    let compiled = compile(&context.root)?;
    context.warn(compiled.warnings);
    let (before, baseline) = match base {
        None => (write::read_existing(&context.root, &BuildCache::default())?.tree(), Baseline::Disk),
        Some(rev) => (git::read_out_at(&context.root, rev)?, Baseline::Revision(rev)),
    };
    check::refuse_impossible_changes(&before, &compiled.tree)?;
    let plan = diff::plan(&before, &compiled.tree);

    let color = match format {
        Format::Text => crate::color_choice(context.color, std::io::stdout().is_terminal()),
        Format::Markdown | Format::Json => ColorChoice::Never,
    };
    let writer = BufferWriter::stdout(color);
    let mut buffer = writer.buffer();
    let written = match format {
        Format::Text => render::text::render(&plan, &baseline, &mut buffer),
        Format::Markdown => buffer.write_all(render::markdown::render(&plan, &baseline).as_bytes()),
        Format::Json => buffer.write_all(render::json::render(&plan, &baseline).as_bytes()),
    };
    // Rendering goes to memory; printing to a closed pipe (`diff | head`) is not an error.
    if written.is_ok() {
        let _ = writer.print(&buffer);
    }
    Ok(if plan.is_empty() { Outcome::Clean } else { Outcome::Changed })
}
