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
          # build.rs asks git for the commit that --version prints, but the sandbox's source has
          # no .git: the flake knows the commit (and, from a dirty tree, says so).
          DEVBOX_GEN_COMMIT = self.shortRev or self.dirtyShortRev or "unknown";
          DEVBOX_GEN_COMMIT_DATE =
            let date = self.lastModifiedDate or "";
            in if date == "" then "" else
              "${builtins.substring 0 4 date}-${builtins.substring 4 2 date}-${builtins.substring 6 2 date}";
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
