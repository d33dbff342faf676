//! Unified diffs of YAML files, built on `similar`, as `git diff` prints them, with one addition:
//! each hunk header names where in the object the change is (`@@ -52,7 +52,7 @@
//! spec.template.spec.containers[devbox].image`), the way git names the enclosing function. Three
//! lines of context rarely show which container or which key a change is in; the path does.

use std::fmt::Write;

use similar::{DiffTag, TextDiff};

/// Lines of unchanged context around each change.
pub(crate) const CONTEXT: usize = 3;

/// The unified diff from `old` to `new` (`None`: the file does not exist on that side), with
/// `--- a/out/...` and `+++ b/out/...` headers. Empty when the texts are equal.
pub(crate) fn unified(old: Option<(&str, &str)>, new: Option<(&str, &str)>) -> String {
    let (old_text, old_name) = old.map_or(("", "/dev/null".to_string()), |(path, text)| (text, format!("a/out/{path}")));
    let (new_text, new_name) = new.map_or(("", "/dev/null".to_string()), |(path, text)| (text, format!("b/out/{path}")));
    let diff = TextDiff::from_lines(old_text, new_text);
    let whole_file = old.is_none() || new.is_none();
    let old_paths = if whole_file { Vec::new() } else { yaml_paths(old_text) };
    let new_paths = if whole_file { Vec::new() } else { yaml_paths(new_text) };
    let mut out = String::new();
    for hunk in diff.unified_diff().context_radius(CONTEXT).iter_hunks() {
        if out.is_empty() {
            out.push_str(&format!("--- {old_name}\n+++ {new_name}\n"));
        }
        let mut header = hunk.header().to_string();
        if let Some(op) = hunk.ops().iter().find(|op| op.tag() != DiffTag::Equal) {
            let path = if op.new_range().is_empty() { old_paths.get(op.old_range().start) } else { new_paths.get(op.new_range().start) };
            if let Some(path) = path.filter(|p| !p.is_empty()) {
                header.push(' ');
                header.push_str(path);
            }
        }
        out.push_str(&header);
        out.push('\n');
        for change in hunk.iter_changes() {
            let _ = write!(out, "{}{}", change.tag(), change.value());
            if change.missing_newline() {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// For each line of a YAML document in block style (what `emit` writes), the path of the key it
/// belongs to: `metadata.labels.app`, `spec.template.spec.containers[devbox].image`, `data.start.sh`
/// for every line of that block scalar. List items are named by their `name:` when they have
/// one, else by index. Comments and blank lines get the path of the line before them.
pub(crate) fn yaml_paths(text: &str) -> Vec<String> {
    #[derive(Clone)]
    struct Node {
        label: String,
        /// A list item; its label becomes `[name]` or `[index]`.
        item: bool,
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut nodes: Vec<Node> = Vec::new();
    // (indent, node, opens a block) from the root to the current key; an item's indent is its
    // dash's column. Sequences may sit at their key's indentation (`containers:` then `- name:`).
    let mut stack: Vec<(usize, usize, bool)> = Vec::new();
    let mut line_nodes: Vec<Vec<usize>> = Vec::with_capacity(lines.len());
    // Item indices per parent sequence: (indent of the dash, count so far).
    let mut item_counts: Vec<(usize, usize)> = Vec::new();
    let mut block_scalar: Option<usize> = None;
    for line in &lines {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if let Some(parent) = block_scalar {
            if content.is_empty() || indent > parent {
                line_nodes.push(stack.iter().map(|(_, n, _)| *n).collect());
                continue;
            }
            block_scalar = None;
        }
        if content.is_empty() || content.starts_with('#') {
            line_nodes.push(stack.iter().map(|(_, n, _)| *n).collect());
            continue;
        }
        let is_item = content == "-" || content.starts_with("- ");
        while stack.last().is_some_and(|&(i, node, opens)| i > indent || i == indent && !(is_item && opens && !nodes[node].item)) {
            stack.pop();
        }
        item_counts.retain(|(i, _)| if is_item { *i <= indent } else { *i < indent });
        let mut rest = content;
        let mut key_indent = indent;
        if is_item {
            let index = match item_counts.iter_mut().find(|(i, _)| *i == indent) {
                Some((_, count)) => {
                    *count += 1;
                    *count - 1
                }
                None => {
                    item_counts.push((indent, 1));
                    0
                }
            };
            nodes.push(Node { label: format!("[{index}]"), item: true });
            stack.push((indent, nodes.len() - 1, false));
            rest = rest.get(2..).unwrap_or("");
            key_indent = indent + 2;
        }
        if let Some((key, value)) = split_key(rest) {
            let value = value.trim();
            if key == "name" && !value.is_empty() {
                // Name the enclosing list item after its `name:`.
                if let Some(&(item_indent, node, _)) = stack.last()
                    && nodes[node].item
                    && item_indent + 2 == key_indent
                {
                    nodes[node].label = format!("[{}]", unquote(value));
                }
            }
            nodes.push(Node { label: unquote(key).to_string(), item: false });
            stack.push((key_indent, nodes.len() - 1, value.is_empty()));
            if value.starts_with('|') || value.starts_with('>') {
                block_scalar = Some(key_indent);
            }
        }
        line_nodes.push(stack.iter().map(|(_, n, _)| *n).collect());
    }
    line_nodes
        .into_iter()
        .map(|path| {
            let mut out = String::new();
            for node in path {
                let node = &nodes[node];
                if !node.item && !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&node.label);
            }
            out
        })
        .collect()
}

/// `key: value` → `("key", " value")`; `key:` → `("key", "")`; a scalar → `None`.
fn split_key(line: &str) -> Option<(&str, &str)> {
    if line.starts_with('"') || line.starts_with('\'') {
        let quote = line.chars().next()?;
        let end = line[1..].find(quote)? + 1;
        let after = &line[end + 1..];
        let value = after.strip_prefix(':')?;
        return (value.is_empty() || value.starts_with(' ')).then_some((&line[..=end], value));
    }
    if let Some(key) = line.strip_suffix(':') {
        return Some((key, ""));
    }
    let (key, value) = line.split_once(": ")?;
    Some((key, value))
}

fn unquote(s: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(quote).and_then(|s| s.strip_suffix(quote)) {
            return inner;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "# Generated by devbox-gen
apiVersion: apps/v1
metadata:
  labels:
    app: x
spec:
  template:
    spec:
      containers:
      - args:
        - lab
        image: a:1
        name: devbox
      - image: b:1
        name: tailscale
      volumes:
      - emptyDir: {}
        name: tmp
data:
  start.sh: |
    #!/bin/bash
      indented: not a key
  \"on\": \"yes\"
";

    #[test]
    fn names_every_line_by_its_path() {
        let paths = yaml_paths(YAML);
        let at = |needle: &str| paths[YAML.lines().position(|l| l.contains(needle)).unwrap()].as_str();
        assert_eq!(at("apiVersion"), "apiVersion");
        assert_eq!(at("app: x"), "metadata.labels.app");
        assert_eq!(at("- lab"), "spec.template.spec.containers[devbox].args[0]");
        assert_eq!(at("image: a:1"), "spec.template.spec.containers[devbox].image");
        assert_eq!(at("image: b:1"), "spec.template.spec.containers[tailscale].image");
        assert_eq!(at("emptyDir"), "spec.template.spec.volumes[tmp].emptyDir");
        assert_eq!(at("#!/bin/bash"), "data.start.sh");
        assert_eq!(at("indented: not a key"), "data.start.sh");
        assert_eq!(at("\"on\""), "data.on");
    }

    #[test]
    fn hunks_say_where_they_are() {
        let new = YAML.replace("image: b:1", "image: b:2");
        let diff = unified(Some(("x/s.yaml", YAML)), Some(("x/s.yaml", &new)));
        assert!(
            diff.starts_with("--- a/out/x/s.yaml\n+++ b/out/x/s.yaml\n@@ -11,7 +11,7 @@ spec.template.spec.containers[tailscale].image\n"),
            "{diff}"
        );
        assert!(diff.contains("\n-      - image: b:1\n+      - image: b:2\n"), "{diff}");
        assert_eq!(unified(Some(("x", YAML)), Some(("x", YAML))), "");
    }

    #[test]
    fn whole_files_come_and_go() {
        let diff = unified(None, Some(("x/a.yaml", "a: 1\n")));
        assert_eq!(diff, "--- /dev/null\n+++ b/out/x/a.yaml\n@@ -0,0 +1 @@\n+a: 1\n");
        let diff = unified(Some(("x/a.yaml", "a: 1")), None);
        assert_eq!(diff, "--- a/out/x/a.yaml\n+++ /dev/null\n@@ -1 +0,0 @@\n-a: 1\n\\ No newline at end of file\n");
    }
}
