export {
  lossChartSvg,
  type ReportStepProfile,
  type RunReport,
  renderReportHtml,
} from './html-report';
export { type MetricsRecord, MetricsWriter, readMetrics } from './metrics';
export {
  type BarChartOptions,
  barChartSvg,
  type ChartSeries,
  escapeXml,
  type LineChartOptions,
  lineChartSvg,
} from './svg-chart';
