/**
 * The error a user sees when `device: cuda` cannot be had, saying what to do. The worker reports
 * onnxruntime's own message and what `onnx-cuda-probe.js` found; this turns them into one sentence each
 * for: the provider files were never installed, they are installed but CUDA/cuDNN libraries are missing,
 * the device number does not exist, there is no usable GPU or driver.
 */
import { ConfigError } from '../core/errors.js';

/** What the worker found out about a failed CUDA session (see onnx-cuda-probe.js). */
export interface CudaFailure {
  /** onnxruntime's error message. */
  message: string;
  /** onnxruntime-node's folder of native libraries. */
  binDir: string;
  /** Provider files that are not there. */
  missingFiles: string[];
  /** The dynamic loader's error for the provider library (a missing CUDA or cuDNN library). */
  loadError: string | null;
}

/**
 * The step that installs onnxruntime-node's CUDA provider files. Its install script (script/install.js,
 * install-utils.js `parseInstallFlag`) reads ONNXRUNTIME_NODE_INSTALL before the `onnxruntime-node-install`
 * npm setting that .npmrc sets to `skip`; `1` forces the download of the platform's manifest (`cuda12` on
 * linux/x64: Microsoft.ML.OnnxRuntime.Gpu.Linux of the same version, from NuGet).
 */
export const CUDA_INSTALL_STEP = 'ONNXRUNTIME_NODE_INSTALL=1 npm rebuild onnxruntime-node';

const CUDA_LIBRARIES = 'the CUDA 12 runtime, cuBLAS, cuFFT and cuDNN 9 (from NVIDIA\'s CUDA and cuDNN packages or its pip wheels)';

/** A ConfigError for a session on CUDA device `deviceId` of `modelPath` that could not be created. */
export function cudaError(failure: CudaFailure, deviceId: number, modelPath: string): ConfigError {
  const device = `cuda:${deviceId}`;
  const head = `device ${device} for ${modelPath}`;
  const orCpu = 'or set the model\'s runtime `device: cpu`';
  if (failure.missingFiles.length > 0) {
    return new ConfigError(
      `${head}: onnxruntime-node's CUDA provider is not installed (missing ${failure.missingFiles.join(', ')}). ` +
        `Install it with \`${CUDA_INSTALL_STEP}\` (downloads it from NuGet; the default install skips it), ` +
        `and have ${CUDA_LIBRARIES} on the library path; ${orCpu}.`,
    );
  }
  if (failure.loadError) {
    return new ConfigError(
      `${head}: onnxruntime's CUDA provider is installed but cannot load: ${failure.loadError}. ` +
        `Install ${CUDA_LIBRARIES} and put their folders on LD_LIBRARY_PATH ` +
        `(\`ldd ${failure.binDir}/libonnxruntime_providers_cuda.so | grep "not found"\` lists what is missing); ${orCpu}.`,
    );
  }
  if (/invalid device ordinal|invalid device id/i.test(failure.message)) {
    return new ConfigError(
      `${head}: there is no CUDA device ${deviceId} on this machine (\`nvidia-smi -L\` lists them, numbered from 0; ` +
        `CUDA_VISIBLE_DEVICES renumbers the visible ones from 0). onnxruntime: ${failure.message}`,
    );
  }
  if (/no CUDA-capable device|driver version is insufficient|CUDA driver|cudaErrorNoDevice|cudaErrorInsufficientDriver|cuda_?init/i.test(failure.message)) {
    return new ConfigError(
      `${head}: no usable CUDA GPU or driver (\`nvidia-smi\` should list the GPU; the driver must support CUDA 12); ${orCpu}. ` +
        `onnxruntime: ${failure.message}`,
    );
  }
  return new ConfigError(`${head}: onnxruntime could not start its CUDA provider: ${failure.message}; ${orCpu}.`);
}
