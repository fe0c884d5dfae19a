export { buildReport, type ReportOptions, type ReportResult } from './build-report.js';
export { collectReportData, type ReportData, type ReportDataOptions } from './report-data.js';
export { renderReport } from './render-report.js';
export { makeThumbnails, type Thumbnail, type ThumbnailOptions } from './thumbnails.js';
export { registerSampleHash } from './sample-hash.js';
