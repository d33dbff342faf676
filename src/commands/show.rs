//! `devbox-gen show NAME`: one user's bundle on stdout, as a multi-document YAML stream that
//! `kubectl apply -f -` would accept, compiled exactly as `build` would.

use crate::diagnostic::Diagnostics;
use crate::pipeline::{compile, resolve_boxes, resolve_user};
use crate::{Context, Outcome};

/// `show --input [NAME]`: the resolved boxes as JSON, after reading and validating everything.
pub(super) fn input(context: &mut Context, name: Option<&str>) -> Result<Outcome, Diagnostics> {
    let (boxes, warnings) = match name {
        Some(name) => resolve_user(&context.root, name).map(|(_, boxes, warnings)| (boxes, warnings))?,
        None => resolve_boxes(&context.root, None)?,
    };
    context.warn(warnings);
    let json = match name {
        None => serde_json::to_string_pretty(&boxes),
        Some(name) => match boxes.iter().find(|b| b.name == name) {
            Some(found) => serde_json::to_string_pretty(found),
            None => {
                let names: Vec<String> = boxes.iter().map(|b| b.name.clone()).collect();
                return Err(crate::resolve::no_user(name, &names).into());
            }
        },
    }
    .expect("a resolved box is plain data");
    crate::stdio::print(format!("{json}\n"))?;
    Ok(Outcome::Clean)
}

pub(super) fn run(context: &mut Context, name: &str) -> Result<Outcome, Diagnostics> {
    let (_, compiled) = compile(context)?;
    context.warn(compiled.warnings);
    let files: Vec<(&String, &String)> = compiled
        .tree
        .files
        .iter()
        .filter(|(path, _)| crate::emit::bundle_of(path) == Some(name) && !path.ends_with("/kustomization.yaml"))
        .collect();
    if files.is_empty() {
        return Err(crate::resolve::no_user(name, &compiled.users).into());
    }
    let mut bundle = String::new();
    for (i, (path, text)) in files.iter().enumerate() {
        let separator = if i == 0 { "" } else { "---\n" };
        bundle.push_str(&format!("{separator}# out/{path}\n{text}"));
    }
    crate::stdio::print(bundle)?;
    Ok(Outcome::Clean)
}
