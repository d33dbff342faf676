{
  description = "devbox-gen: one TOML file per person in, GitOps-ready Kubernetes developer boxes out";

  # The first `nix develop` or `nix build` creates flake.lock; none is committed because
  # it cannot be generated honestly without reaching the Nix caches.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; };
        manifest = (pkgs.lib.importTOML ./Cargo.toml).package;
      in
      {
        packages.default = pkgs.rustPlatform.buildRustPackage {
          pname = manifest.name;
          version = manifest.version;
          src = pkgs.lib.cleanSource ./.;
          cargoLock.lockFile = ./Cargo.lock;
          # The test suite runs in the check phase; it needs git and ssh-keygen-free inputs only.
          nativeCheckInputs = [ pkgs.git ];
          meta = {
            description = manifest.description;
            license = pkgs.lib.licenses.asl20;
            mainProgram = "devbox-gen";
          };
        };

        apps.default = flake-utils.lib.mkApp { drv = self.packages.${system}.default; };

        devShells.default = pkgs.mkShell {
          inputsFrom = [ self.packages.${system}.default ];
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            cargo-nextest
            cargo-insta
            kubectl
            kustomize
            checkov
            taplo
            shellcheck
            openssh
            python3
          ];
        };
      });
}
