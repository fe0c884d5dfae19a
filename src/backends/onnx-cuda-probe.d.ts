/** Types of onnx-cuda-probe.js (plain JavaScript: the ONNX worker imports it with no loader). */
export function cudaProviderFiles(platform?: string): string[];
export function loadError(file: string): string | null;
export function diagnoseCudaProvider(binDir: string, platform?: string): { binDir: string; missingFiles: string[]; loadError: string | null };
