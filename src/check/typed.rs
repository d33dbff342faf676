//! The typed check: objects of the kinds a devbox uses are deserialised into k8s-openapi's
//! structs, and what they would not take is a problem. An unknown field is reported (serde
//! would drop it silently, and the API server refuses it with `--strict`), with the field meant
//! when the name is a near miss; a value of the wrong type is reported with its path.

use std::collections::HashSet;

use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::kind;
use crate::render::Object;

/// [`typed_check`], skipped for an object of a shape that already passed it on this thread.
///
/// Deserialising into k8s-openapi's structs copies every string of the object into a typed
/// tree that is then dropped: a tenth of a build's CPU, for a verdict that 10,000 boxes of one
/// template mostly share. What the verdict depends on is the [`shape`]: the kind, every key,
/// the JSON type of every value, every number and boolean, and the few strings k8s-openapi
/// parses rather than copies. Only passes are remembered, so every problem is reported in full.
pub(super) fn typed_check_by_shape(object: &Object) -> Vec<String> {
    use std::cell::RefCell;
    thread_local! {
        static PASSED: RefCell<HashSet<u128>> = RefCell::new(HashSet::new());
    }
    /// Enough for every shape of a large fleet; past it, checks run in full.
    const REMEMBERED: usize = 1 << 16;
    let shape = shape(object);
    if PASSED.with(|passed| passed.borrow().contains(&shape)) {
        return Vec::new();
    }
    let problems = typed_check(object);
    if problems.is_empty() {
        PASSED.with(|passed| {
            let mut passed = passed.borrow_mut();
            if passed.len() < REMEMBERED {
                passed.insert(shape);
            }
        });
    }
    problems
}

/// Keys whose string values k8s-openapi parses (in the kinds [`typed_check`] knows): `Time`
/// and `MicroTime` fields (`creationTimestamp`, `lastTransitionTime`, `startedAt`, ...) are
/// RFC 3339 timestamps and `ByteString` fields (`data` of a Secret, `binaryData`) base64.
/// Every other string (quantities, enums, `IntOrString`) is taken as it is.
fn parsed_string(key: &str) -> bool {
    key.ends_with("Time")
        || key.ends_with("Timestamp")
        || key.ends_with("At")
        || matches!(key, "time" | "timeAdded" | "data" | "binaryData")
}

/// A 128-bit hash of what deserialising `object` into a k8s-openapi type depends on (see
/// [`typed_check_by_shape`]): two objects of one shape pass or fail it alike.
fn shape(object: &Object) -> u128 {
    use std::hash::Hasher;
    fn walk(value: &Value, parsed: bool, hasher: &mut xxhash_rust::xxh3::Xxh3) {
        match value {
            Value::Null => hasher.write_u8(0),
            Value::Bool(b) => hasher.write_u8(if *b { 2 } else { 1 }),
            Value::Number(n) => {
                // Which integer types take it depends on its value: `replicas` is an i32.
                if let Some(i) = n.as_i64() {
                    hasher.write_u8(3);
                    hasher.write_i64(i);
                } else if let Some(u) = n.as_u64() {
                    hasher.write_u8(4);
                    hasher.write_u64(u);
                } else {
                    hasher.write_u8(5);
                    hasher.write_u64(n.as_f64().unwrap_or_default().to_bits());
                }
            }
            Value::String(text) => {
                hasher.write_u8(6);
                if parsed {
                    hasher.write(text.as_bytes());
                    hasher.write_u8(0);
                }
            }
            Value::Array(items) => {
                hasher.write_u8(7);
                hasher.write_usize(items.len());
                for item in items {
                    walk(item, parsed, hasher);
                }
            }
            Value::Object(map) => entries(map, parsed, hasher),
        }
    }
    // Under a parsed key, every string is: the values of a Secret's `data` map are base64.
    fn entries(map: &serde_json::Map<String, Value>, parsed: bool, hasher: &mut xxhash_rust::xxh3::Xxh3) {
        hasher.write_u8(8);
        hasher.write_usize(map.len());
        for (key, value) in map {
            hasher.write(key.as_bytes());
            hasher.write_u8(0);
            walk(value, parsed || parsed_string(key), hasher);
        }
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    // Values of `apiVersion` and `kind` choose the type.
    for key in ["apiVersion", "kind"] {
        hasher.write(object.get(key).and_then(Value::as_str).unwrap_or("").as_bytes());
        hasher.write_u8(0);
    }
    entries(object, false, &mut hasher);
    hasher.digest128()
}

/// Deserialises known kinds into k8s-openapi types; unknown fields and wrong types are errors.
fn typed_check(object: &Object) -> Vec<String> {
    use k8s_openapi::api::{
        apps::v1 as apps, batch::v1 as batch, core::v1 as core, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    };
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = kind(object);
    macro_rules! typed {
        ($($ty:ty),* $(,)?) => {
            $(if api_version == <$ty>::API_VERSION && kind == <$ty>::KIND { return strict::<$ty>(object); })*
        };
    }
    typed!(
        apps::StatefulSet,
        apps::Deployment,
        apps::DaemonSet,
        apps::ReplicaSet,
        batch::CronJob,
        batch::Job,
        core::ConfigMap,
        core::Secret,
        core::PersistentVolumeClaim,
        core::Service,
        core::ServiceAccount,
        core::Namespace,
        core::Pod,
        networking::NetworkPolicy,
        policy::PodDisruptionBudget,
        rbac::Role,
        rbac::RoleBinding,
        rbac::ClusterRole,
        rbac::ClusterRoleBinding,
    );
    Vec::new() // other kinds (CRDs from custom templates) are checked by their own controllers
}

fn strict<T: DeserializeOwned>(object: &Object) -> Vec<String> {
    let mut unknown = Vec::new();
    let result: Result<T, _> = serde_ignored::deserialize(object, |path| unknown.push(crate::source::ignored_path(&path)));
    let mut problems: Vec<String> = unknown.into_iter().map(|path| unknown_field::<T>(object, &path)).collect();
    if let Err(error) = result {
        // serde's message says what was wrong, not where; the path is found again only on this
        // rare path, so a valid object pays nothing for it.
        let at = match serde_path_to_error::deserialize::<_, T>(object) {
            Err(located) if !located.path().to_string().starts_with('.') => format!(" at `{}`", located.path()),
            _ => String::new(),
        };
        problems.push(format!("not a valid {}{at}: {error}", kind(object)));
    }
    problems
}

/// `unknown field `spec.replica``, with the field of that object meant (`replicas`) when the
/// name is a near miss: the API server would reject the object, not guess.
fn unknown_field<T: DeserializeOwned>(object: &Object, path: &str) -> String {
    let problem = format!("unknown field `{path}`");
    let steps = field_path(path);
    let Some((Field::Key(key), parent)) = steps.split_last() else { return problem };
    let root = Value::Object(object.clone());
    let found = std::cell::Cell::new(None);
    // Only the fields are wanted: the deserialisation itself always stops early.
    let _ = T::deserialize(FieldNames { value: &root, path: parent, found: &found });
    let known: Vec<String> = found.get().unwrap_or_default().iter().copied().map(String::from).collect();
    match crate::read::closest(key, &known) {
        Some(near) => format!("{problem}: did you mean `{near}`?"),
        None => problem,
    }
}

/// A step of a path as serde_ignored reports it (`spec.template.spec.containers[0].imagePullPolice`).
#[derive(Debug, PartialEq, Eq)]
enum Field {
    Key(String),
    Index(usize),
}

fn field_path(path: &str) -> Vec<Field> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
            steps.push(Field::Key(key.to_string()));
        }
        steps.extend(pieces.filter_map(|index| index.trim_end_matches(']').parse().ok()).map(Field::Index));
    }
    steps
}

/// A deserializer that follows `path` into a JSON value and keeps the field names the type
/// there declares: k8s-openapi's structs pass them to `deserialize_struct` (the list serde's
/// own unknown-field error would print), but do not reject unknown fields themselves.
#[derive(Clone, Copy)]
struct FieldNames<'a> {
    value: &'a Value,
    path: &'a [Field],
    found: &'a std::cell::Cell<Option<&'static [&'static str]>>,
}

/// Why [`FieldNames`] stopped: found, or the path led nowhere.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stop {}

impl serde::de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'a> FieldNames<'a> {
    fn next(self, value: &'a Value) -> Self {
        Self { value, path: &self.path[1..], ..self }
    }
}

impl<'a> serde::Deserializer<'a> for FieldNames<'a> {
    type Error = Stop;

    fn deserialize_any<V: serde::de::Visitor<'a>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.value.deserialize_any(visitor).map_err(|_| Stop)
    }

    fn deserialize_struct<V: serde::de::Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if self.path.is_empty() {
            self.found.set(Some(fields));
            return Err(Stop);
        }
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: serde::de::Visitor<'a>>(self, visitor: V) -> Result<V::Value, Stop> {
        match self.path.first() {
            Some(Field::Key(key)) => {
                let value = self.value.get(key).ok_or(Stop)?;
                visitor.visit_map(OneEntry { key: Some(key), value: Some(self.next(value)) })
            }
            _ => Err(Stop),
        }
    }

    fn deserialize_seq<V: serde::de::Visitor<'a>>(self, visitor: V) -> Result<V::Value, Stop> {
        match self.path.first() {
            Some(Field::Index(i)) => {
                let value = self.value.get(i).ok_or(Stop)?;
                visitor.visit_seq(OneItem(Some(self.next(value))))
            }
            _ => Err(Stop),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'a>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'a>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        tuple tuple_struct enum identifier ignored_any
    }
}

/// The one entry of a map on the path.
struct OneEntry<'a> {
    key: Option<&'a str>,
    value: Option<FieldNames<'a>>,
}

impl<'a> serde::de::MapAccess<'a> for OneEntry<'a> {
    type Error = Stop;

    fn next_key_seed<K: serde::de::DeserializeSeed<'a>>(&mut self, seed: K) -> Result<Option<K::Value>, Stop> {
        use serde::de::IntoDeserializer;
        self.key.take().map(|key| seed.deserialize(key.into_deserializer())).transpose()
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        seed.deserialize(self.value.take().ok_or(Stop)?)
    }
}

/// The one item of a list on the path.
struct OneItem<'a>(Option<FieldNames<'a>>);

impl<'a> serde::de::SeqAccess<'a> for OneItem<'a> {
    type Error = Stop;

    fn next_element_seed<T: serde::de::DeserializeSeed<'a>>(&mut self, seed: T) -> Result<Option<T::Value>, Stop> {
        self.0.take().map(|item| seed.deserialize(item)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_of_known_kinds_are_reported_with_their_path() {
        let object: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labelz": {}}, "data": {"a": "b"}
        }))
        .unwrap();
        assert_eq!(typed_check(&object), vec!["unknown field `metadata.labelz`: did you mean `labels`?"]);
    }

    #[test]
    fn unknown_fields_deep_in_lists_get_the_field_meant() {
        let object: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"},
            "spec": {"replica": 1, "selector": {}, "template": {"spec": {"containers": [
                {"name": "a"}, {"name": "b", "imagePullPolice": "Always", "zzz": 1}
            ]}}}
        }))
        .unwrap();
        assert_eq!(
            typed_check(&object),
            vec![
                "unknown field `spec.replica`: did you mean `replicas`?",
                "unknown field `spec.template.spec.containers[1].imagePullPolice`: did you mean `imagePullPolicy`?",
                "unknown field `spec.template.spec.containers[1].zzz`",
            ]
        );
    }

    #[test]
    fn wrong_types_are_reported() {
        let object: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"}, "spec": {"replicas": "one"}
        }))
        .unwrap();
        let problems = typed_check(&object);
        assert!(problems.iter().any(|p| p.starts_with("not a valid StatefulSet at `spec.replicas`: invalid type")), "{problems:?}");
    }

    fn statefulset(name: &str, extra_metadata: serde_json::Value, replicas: serde_json::Value) -> Object {
        let mut object: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/instance": name}},
            "spec": {
                "replicas": replicas, "serviceName": name,
                "selector": {"matchLabels": {"app.kubernetes.io/instance": name}},
                "template": {"metadata": {"labels": {"app.kubernetes.io/instance": name}},
                             "spec": {"containers": [{"name": "devbox", "image": format!("img/{name}:1")}]}},
            },
        }))
        .unwrap();
        if let (Some(metadata), serde_json::Value::Object(extra)) =
            (object.get_mut("metadata").and_then(Value::as_object_mut), extra_metadata)
        {
            metadata.extend(extra);
        }
        object
    }

    #[test]
    fn objects_that_differ_only_in_names_and_images_share_a_shape() {
        let [alice, bob] = ["alice", "bob"].map(|n| statefulset(n, serde_json::json!({}), serde_json::json!(1)));
        assert_eq!(shape(&alice), shape(&bob));
        let mut with_env = bob.clone();
        with_env["spec"]["template"]["spec"]["containers"][0]["env"] = serde_json::json!([{"name": "A", "value": "1"}]);
        assert_ne!(shape(&alice), shape(&with_env), "a new key is a new shape");
        assert_ne!(shape(&alice), shape(&statefulset("alice", serde_json::json!({}), serde_json::json!(2))), "numbers count");
        assert_ne!(shape(&alice), shape(&statefulset("alice", serde_json::json!({}), serde_json::json!("1"))), "types count");
    }

    #[test]
    fn a_remembered_shape_never_hides_a_problem_of_its_values() {
        // Each first call passes and is remembered; each second one has the same keys and
        // types, and a value k8s-openapi refuses.
        let stamp = |at: &str| statefulset("alice", serde_json::json!({"creationTimestamp": at}), serde_json::json!(1));
        assert!(typed_check_by_shape(&stamp("2026-11-27T10:00:00Z")).is_empty());
        assert!(!typed_check_by_shape(&stamp("yesterday")).is_empty(), "a timestamp is parsed");
        let scaled = |n: i64| statefulset("alice", serde_json::json!({}), serde_json::json!(n));
        assert!(typed_check_by_shape(&scaled(1)).is_empty());
        assert!(!typed_check_by_shape(&scaled(1 << 40)).is_empty(), "replicas is an i32");
        let secret = |value: &str| -> Object {
            serde_json::from_value(
                serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"key": value}}),
            )
            .unwrap()
        };
        assert!(typed_check_by_shape(&secret("aGVsbG8=")).is_empty());
        assert!(!typed_check_by_shape(&secret("not base64!")).is_empty(), "a Secret's data is base64");
        // And a problem is reported every time, not only the first.
        let unknown = |name: &str| statefulset(name, serde_json::json!({"labelz": {}}), serde_json::json!(1));
        assert_eq!(typed_check_by_shape(&unknown("a")), typed_check_by_shape(&unknown("b")));
        assert!(!typed_check_by_shape(&unknown("c")).is_empty());
    }
}
