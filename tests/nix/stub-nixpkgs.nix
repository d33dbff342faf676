# A stand-in for nixpkgs with just what flake.nix uses, so CI can evaluate the flake without
# the Nix caches (which this machine cannot reach). Derivations become plain attribute sets.
{ system }:
let
  tool = name: { type = "stub-package"; inherit name; };
in
{
  lib = {
    importTOML = path: builtins.fromTOML (builtins.readFile path);
    cleanSource = src: src;
    licenses.asl20 = "Apache-2.0";
  };
  rustPlatform.buildRustPackage = args: args // { type = "stub-derivation"; name = "${args.pname}-${args.version}"; inherit system; };
  mkShell = args: args // { type = "stub-shell"; };
} // builtins.listToAttrs (map (name: { inherit name; value = tool name; }) [
  "git" "cargo" "rustc" "clippy" "rustfmt" "cargo-nextest" "cargo-insta" "kubectl" "kustomize"
  "checkov" "taplo" "shellcheck" "openssh" "python3"
])
