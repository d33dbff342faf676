//! JSON Schemas of the two file formats, generated from the Rust types so they cannot drift.
//! Editors (taplo / Even Better TOML) read them through each file's `#:schema` line; we read
//! them too, to know which keys exist where when suggesting a fix for a typo.

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema};
use serde_json::Value;

use crate::model::{DevboxConfig, UserFile};

/// The schema files `devbox-gen schema` writes, by file name under `schema/`.
pub fn files() -> Vec<(&'static str, String)> {
    vec![
        ("devbox.schema.json", to_pretty_json(&schema_for::<DevboxConfig>())),
        ("user.schema.json", to_pretty_json(&schema_for::<UserFile>())),
    ]
}

/// Draft-07, because taplo's validator knows drafts 4, 6 and 7 only.
pub(crate) fn schema_for<T: JsonSchema>() -> Schema {
    SchemaSettings::draft07().with_transform(RecursiveTransform(without_null)).into_generator().into_root_schema_for::<T>()
}

/// TOML has no null: an `Option` field is a key left out, never `null`. schemars writes one as
/// `anyOf: [T, {type: null}]` (or `type: [T, "null"]`), and taplo then answers a wrong value
/// with "is not valid under any of the schemas listed in the 'anyOf' keyword" where, against
/// `T` alone, it names the values allowed. The nulls of table defaults (`{uid: null}`) go too.
fn without_null(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else { return };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|kind| kind != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".into(), only);
        }
    }
    let not_null = |variant: &Value| variant.get("type") != Some(&Value::from("null"));
    if let Some(Value::Array(variants)) = object.get("anyOf")
        && let [variant] = variants.iter().filter(|variant| not_null(variant)).collect::<Vec<_>>()[..]
        && variants.len() == 2
    {
        // `{description, allOf: [$ref]}`: draft-07 ignores the siblings of a `$ref` itself.
        let variant = variant.clone();
        object.remove("anyOf");
        object.insert("allOf".into(), Value::Array(vec![variant]));
    }
    if let Some(Value::Array(values)) = object.get_mut("enum") {
        values.retain(|value| !value.is_null());
    }
    match object.get_mut("default") {
        Some(Value::Null) => {
            object.remove("default");
        }
        Some(Value::Object(fields)) => {
            fields.retain(|_, value| !value.is_null());
            if fields.is_empty() {
                object.remove("default");
            }
        }
        _ => {}
    }
}

fn to_pretty_json(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema is always serialisable");
    text.push('\n');
    text
}

/// The field names allowed in the table at dotted `path` of `T` (empty path: the top level).
pub(crate) fn known_keys<T: JsonSchema>(path: &str) -> Vec<String> {
    let root = schema_for::<T>();
    let root = root.as_value();
    let mut node = resolve(root, root);
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let segment = segment.split('[').next().unwrap_or(segment);
        match node.get("properties").and_then(|p| p.get(segment)) {
            Some(child) => node = resolve(root, child),
            None => return Vec::new(),
        }
    }
    node.get("properties").and_then(Value::as_object).map(|props| props.keys().cloned().collect()).unwrap_or_default()
}

/// Follows `$ref`, and the `allOf: [$ref]` that draft-07 wraps one in when it has siblings
/// (an optional field's description: [`without_null`]).
pub(crate) fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    loop {
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            match root.pointer(reference.trim_start_matches('#')) {
                Some(target) => node = target,
                None => return node,
            }
        } else if let Some(first) = node.get("allOf").and_then(Value::as_array).and_then(|all| all.first()) {
            node = first;
        } else {
            return node;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_nested_fields_through_options_and_refs() {
        assert!(known_keys::<UserFile>("").contains(&"email".to_string()));
        assert_eq!(known_keys::<UserFile>("resources"), vec!["cpu", "memory"]);
        assert_eq!(known_keys::<DevboxConfig>("defaults.home"), vec!["size", "storage_class"]);
        assert!(known_keys::<UserFile>("nonsense").is_empty());
    }

    #[test]
    fn schemas_refuse_unknown_fields_for_editors() {
        let user = schema_for::<UserFile>();
        assert_eq!(user.as_value()["additionalProperties"], Value::Bool(false));
        assert_eq!(user.as_value()["$schema"], "http://json-schema.org/draft-07/schema#");
    }
}
