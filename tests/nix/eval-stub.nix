# Evaluates flake.nix's outputs against stub inputs and checks their shape:
#   nix-instantiate --eval --strict tests/nix/eval-stub.nix   (prints true)
let
  flake = import ../../flake.nix;
  flake-utils.lib = {
    eachDefaultSystem = f:
      let perSystem = f "x86_64-linux";
      in builtins.mapAttrs (_: value: { x86_64-linux = value; }) perSystem;
    mkApp = { drv }: { type = "app"; program = "${drv.name}/bin/devbox-gen"; };
  };
  outputs = flake.outputs { self = outputs; nixpkgs = ./stub-nixpkgs.nix; inherit flake-utils; };
  package = outputs.packages.x86_64-linux.default;
  cargo = builtins.fromTOML (builtins.readFile ../../Cargo.toml);
  checks = [
    (package.pname == "devbox-gen")
    (package.version == cargo.package.version)
    (package.meta.mainProgram == "devbox-gen")
    (outputs.apps.x86_64-linux.default.type == "app")
    (builtins.elem "kubectl" (map (p: p.name) outputs.devShells.x86_64-linux.default.packages))
    (builtins.length outputs.devShells.x86_64-linux.default.inputsFrom == 1)
  ];
in
builtins.all (x: x) checks
