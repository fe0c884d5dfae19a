/**
 * What a user reads when `device: cuda` cannot be had. No GPU on the machines these tests run on, so:
 * - the missing-files case is a real onnxruntime session asked for CUDA here (onnxruntime-node 1.30 throws
 *   "OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library" and names the file only
 *   in its native log), translated;
 * - the missing-CUDA-library case loads a provider library built here that needs an absent libcudnn.so.9
 *   (the dynamic loader's real error);
 * - a device number that does not exist and a missing driver use onnxruntime's message format
 *   (onnxruntime/core/providers/cuda/cuda_call.cc, CudaCall: "%s failure %d: %s ; GPU=%d ; hostname=%s ;
 *   file=%s ; line=%d ; expr=%s; %s") with cudaGetErrorString's texts for errors 101, 100 and 35.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';

import { CUDA_INSTALL_STEP, cudaError } from '../../src/backends/onnx-cuda-errors.js';
import { diagnoseCudaProvider } from '../../src/backends/onnx-cuda-probe.js';
import { ConfigError } from '../../src/core/errors.js';

const require = createRequire(import.meta.url);
const binDir = path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
const cudaInstalled = existsSync(path.join(binDir, 'libonnxruntime_providers_cuda.so'));
const model = path.join(import.meta.dirname, '..', 'fixtures', 'models', 'session', 'add.onnx');
const dir = mkdtempSync(path.join(tmpdir(), 'vlc-cuda-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hasCc = spawnSync('cc', ['--version']).status === 0;

describe('CUDA errors say what to do', () => {
  it.skipIf(cudaInstalled)('provider files not installed: a real onnxruntime session asked for CUDA, translated', async () => {
    let message = '';
    try {
      await ort.InferenceSession.create(model, { executionProviders: [{ name: 'cuda', deviceId: 0 }], logSeverityLevel: 4 });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/Failed to load shared library/);
    const err = cudaError({ message, ...diagnoseCudaProvider(binDir) }, 0, model);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain(`device cuda:0 for ${model}: onnxruntime-node's CUDA provider is not installed (missing `);
    expect(err.message).toContain(path.join(binDir, 'libonnxruntime_providers_cuda.so'));
    expect(err.message).toContain('Install it with `ONNXRUNTIME_NODE_INSTALL=1 npm rebuild onnxruntime-node`');
    expect(err.message).toContain('cuDNN 9');
    expect(err.message).toContain('`device: cpu`');
  });

  it.skipIf(!hasCc)('provider installed but a CUDA library missing: names the library and how to find the others', () => {
    const fake = path.join(dir, 'bin');
    execFileSync('mkdir', ['-p', fake]);
    writeFileSync(path.join(dir, 'dep.c'), 'int cudnnGetVersion(void) { return 9; }\n');
    writeFileSync(path.join(dir, 'provider.c'), 'extern int cudnnGetVersion(void);\nint GetProvider(void) { return cudnnGetVersion(); }\n');
    // A libcudnn.so.9 to link against, removed afterwards: the provider then needs a library that is not there.
    execFileSync('cc', ['-shared', '-fPIC', '-o', path.join(dir, 'libcudnn.so.9'), '-Wl,-soname,libcudnn.so.9', path.join(dir, 'dep.c')]);
    execFileSync('cc', ['-shared', '-fPIC', '-o', path.join(fake, 'libonnxruntime_providers_cuda.so'), path.join(dir, 'provider.c'), `-L${dir}`, '-l:libcudnn.so.9']);
    execFileSync('cc', ['-shared', '-fPIC', '-o', path.join(fake, 'libonnxruntime_providers_shared.so'), path.join(dir, 'dep.c')]);
    rmSync(path.join(dir, 'libcudnn.so.9'));

    const found = diagnoseCudaProvider(fake);
    expect(found.missingFiles).toEqual([]);
    expect(found.loadError).toMatch(/libcudnn\.so\.9: cannot open shared object file/);
    const err = cudaError({ message: 'OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library', ...found }, 0, model);
    expect(err.message).toContain("onnxruntime's CUDA provider is installed but cannot load: libcudnn.so.9: cannot open shared object file");
    expect(err.message).toContain('LD_LIBRARY_PATH');
    expect(err.message).toContain(`ldd ${fake}/libonnxruntime_providers_cuda.so | grep "not found"`);
  });

  it('a device number that does not exist says how to list the devices', () => {
    const message =
      'CUDA failure 101: invalid device ordinal ; GPU=0 ; hostname=h ; file=/onnxruntime_src/onnxruntime/core/providers/cuda/cuda_execution_provider.cc ; line=1 ; expr=cudaSetDevice(info_.device_id); ';
    const err = cudaError({ message, binDir, missingFiles: [], loadError: null }, 3, model);
    expect(err.message).toContain(`device cuda:3 for ${model}: there is no CUDA device 3 on this machine`);
    expect(err.message).toContain('`nvidia-smi -L`');
    expect(err.message).toContain('CUDA_VISIBLE_DEVICES');
  });

  it('no GPU or an old driver says so', () => {
    for (const text of ['CUDA failure 100: no CUDA-capable device is detected', 'CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version']) {
      const err = cudaError({ message: `${text} ; GPU=0 ; hostname=h ; file=f ; line=1 ; expr=cudaSetDevice(info_.device_id); `, binDir, missingFiles: [], loadError: null }, 0, model);
      expect(err.message).toContain('no usable CUDA GPU or driver (`nvidia-smi` should list the GPU');
      expect(err.message).toContain(text);
    }
  });

  it('anything else keeps onnxruntime\'s words', () => {
    const err = cudaError({ message: 'CUDNN failure 4: CUDNN_STATUS_INTERNAL_ERROR', binDir, missingFiles: [], loadError: null }, 0, model);
    expect(err.message).toBe(`device cuda:0 for ${model}: onnxruntime could not start its CUDA provider: CUDNN failure 4: CUDNN_STATUS_INTERNAL_ERROR; or set the model's runtime \`device: cpu\`.`);
  });

  it('the install step is the one the README gives', () => {
    expect(CUDA_INSTALL_STEP).toBe('ONNXRUNTIME_NODE_INSTALL=1 npm rebuild onnxruntime-node');
  });
});
