// devbox-gen's default template.
//
// devbox-gen calls this function once per user with `box`, the user's file
// after validation and defaulting, and writes every object in the result
// that has apiVersion and kind to its own file under out/.
//
// To customise, set `template = "templates/devbox.jsonnet"` in devbox.toml and
// start from a copy of this file; devbox.libsonnet documents the bundle's
// components and the settings that can be overridden. For example:
//
//   local devbox = import 'devbox-gen/devbox.libsonnet';
//   function(box)
//     devbox.bundle(box) + {
//       statefulSet+: { metadata+: { labels+: { team: 'ml' } } },
//     }
local devbox = import 'devbox-gen/devbox.libsonnet';
function(box) devbox.bundle(box)
