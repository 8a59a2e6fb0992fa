/**
 * Choose the TensorFlow.js backend at the package boundary. Model packages never import a
 * backend; applications call `useBackend` once at start-up.
 */
import * as tf from '@tensorflow/tfjs-core';

export type BackendName = 'wasm' | 'cpu' | 'tensorflow' | 'tensorflow-gpu';

export const BACKEND_NAMES: readonly BackendName[] = [
  'wasm',
  'cpu',
  'tensorflow',
  'tensorflow-gpu',
];

/** npm package providing each native backend (optional, loaded dynamically). */
const NATIVE_PACKAGES: Record<'tensorflow' | 'tensorflow-gpu', string> = {
  tensorflow: '@tensorflow/tfjs-node',
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
};

export function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name);
}

/**
 * Import a package by a computed specifier, so bundlers and the type checker leave optional
 * native packages alone. Returns null when the package is not installed.
 */
async function importOptional(specifier: string): Promise<unknown | null> {
  try {
    return await import(/* @vite-ignore */ specifier);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const message = String((err as Error)?.message ?? err);
    if (
      (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
      message.includes(specifier)
    )
      return null;
    throw err;
  }
}

/**
 * Make `name` the active tfjs backend (default `wasm`) and return the name of the backend
 * actually in use (`'wasm'`, `'cpu'`, or `'tensorflow'` for both native backends).
 *
 * `tensorflow` and `tensorflow-gpu` need @tensorflow/tfjs-node / @tensorflow/tfjs-node-gpu,
 * which are optional: when absent this throws an Error whose message is one line telling
 * how to install them.
 */
export async function useBackend(name: BackendName = 'wasm'): Promise<string> {
  let tfName: string;
  switch (name) {
    case 'wasm':
      await import('@tensorflow/tfjs-backend-wasm');
      tfName = 'wasm';
      break;
    case 'cpu':
      await import('@tensorflow/tfjs-backend-cpu');
      tfName = 'cpu';
      break;
    case 'tensorflow':
    case 'tensorflow-gpu': {
      const pkg = NATIVE_PACKAGES[name];
      if ((await importOptional(pkg)) === null)
        throw new Error(
          `the ${name} backend needs ${pkg}, which is not installed: install it with \`npm i ${pkg}\``,
        );
      tfName = 'tensorflow'; // both packages register their backend under this name
      break;
    }
    default:
      throw new Error(`unknown backend '${name}': expected one of ${BACKEND_NAMES.join(', ')}`);
  }
  if (!(await tf.setBackend(tfName)))
    throw new Error(`could not initialise the ${name} TensorFlow.js backend`);
  await tf.ready();
  // The cpu backend prints "Hi, looks like you are running TensorFlow.js in Node.js. To speed
  // things up dramatically, install our node backend" at its first tensor write; the CLIs
  // choose their backend deliberately (and say which), so the banner is noise. `firstUse` is
  // the flag it checks (tfjs-backend-cpu's MathBackendCPU).
  const active = tf.backend() as { firstUse?: boolean };
  if (active.firstUse) active.firstUse = false;
  return tf.getBackend();
}
