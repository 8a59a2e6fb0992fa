#!/usr/bin/env node
// Installed from a registry with npm, onnxruntime-node's postinstall script downloads the CUDA
// provider libraries from NuGet on linux/x64 unless the installing user sets
// ONNXRUNTIME_NODE_INSTALL=skip (or the npm config onnxruntime-node-install=skip): on a machine
// that cannot reach NuGet a plain `npm install @dif-fusion/fuser` fails, and CPU users download
// the CUDA libraries anyway. A dependency cannot set that config for another package's script,
// but npm runs every preinstall script before any postinstall script, and that script skips the
// download when the files it would download are present. So this preinstall puts empty
// placeholders where the CUDA files go; the CPU binaries ship in the npm package and are
// untouched. Opt in to CUDA with ONNXRUNTIME_NODE_INSTALL=cuda12 (then this script does nothing
// and onnxruntime-node's own script downloads the libraries, replacing any placeholder):
//   ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node
// @dif-fusion/onnx treats an empty provider library as "CUDA not installed".
// Never fails the install: any problem leaves onnxruntime-node's default behaviour.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function main() {
  const explicit = [
    'ONNXRUNTIME_NODE_INSTALL',
    'npm_config_onnxruntime_node_install',
    'ONNXRUNTIME_NODE_INSTALL_CUDA',
    'npm_config_onnxruntime_node_install_cuda',
  ].some((k) => process.env[k]);
  if (explicit) return; // the user chose: onnxruntime-node's script follows that choice
  // Only installed as a dependency (inside node_modules), never in the dif-fusion repository.
  if (!__dirname.split(path.sep).includes('node_modules')) return;
  let ortDir;
  try {
    ortDir = path.dirname(require.resolve('onnxruntime-node/package.json', { paths: [__dirname] }));
  } catch {
    return;
  }
  const meta = require(path.join(ortDir, 'script', 'install-metadata.js'));
  const platform = `${process.platform}/${process.arch}`;
  const bin = path.join(ortDir, 'bin', 'napi-v6', process.platform, process.arch);
  if (!fs.existsSync(bin)) return;
  let placed = 0;
  for (const name of meta.requirements?.[platform] ?? []) {
    const manifest = meta.manifests?.[`${platform}:${name}`] ?? {};
    for (const file of Object.keys(manifest)) {
      try {
        fs.writeFileSync(path.join(bin, file), '', { flag: 'wx' }); // never over a real file
        placed++;
      } catch {}
    }
  }
  if (placed > 0)
    console.log(
      `@dif-fusion/onnx: CPU inference by default; for CUDA: ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`,
    );
}

try {
  main();
} catch {}
