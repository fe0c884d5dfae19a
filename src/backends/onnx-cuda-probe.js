// Why onnxruntime could not start its CUDA execution provider, found out in the ONNX worker
// (src/backends/onnx-worker.js) after `InferenceSession.create` failed. Plain JavaScript for the same
// reason as the worker. onnxruntime-node only says "Failed to load shared library" to JavaScript (the
// library and the reason go to its native log on stderr), so the provider library is loaded here once
// more with the loader's own error kept: that names the missing CUDA or cuDNN library.

import { existsSync } from 'node:fs';
import path from 'node:path';

/** The provider libraries onnxruntime-node's install script puts next to its binding (install-metadata.js). */
export function cudaProviderFiles(platform = process.platform) {
  if (platform === 'win32') return ['onnxruntime_providers_cuda.dll', 'onnxruntime_providers_shared.dll'];
  return ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'];
}

/**
 * Load `file` as the dynamic loader would, and return its error (`libcudnn.so.9: cannot open shared
 * object file`), or null when it loads. `process.dlopen` loads any shared library; one that is not a
 * Node addon then fails with "did not self-register", which means it loaded.
 */
export function loadError(file) {
  try {
    process.dlopen({ exports: {} }, file);
    return null;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return /did not self-register/.test(message) ? null : message;
  }
}

/**
 * What is wrong with the CUDA provider in `binDir`: the provider files that are missing, else the first
 * one's load error (its CUDA/cuDNN dependencies), else nothing found (the cause is in onnxruntime's message).
 */
export function diagnoseCudaProvider(binDir, platform = process.platform) {
  const files = cudaProviderFiles(platform).map((f) => path.join(binDir, f));
  const missingFiles = files.filter((f) => !existsSync(f));
  if (missingFiles.length > 0) return { binDir, missingFiles, loadError: null };
  for (const file of files) {
    const error = loadError(file);
    if (error) return { binDir, missingFiles: [], loadError: error };
  }
  return { binDir, missingFiles: [], loadError: null };
}
