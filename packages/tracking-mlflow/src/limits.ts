/** MLflow's server-side limits (mlflow/utils/validation.py); see shared/reference/mlflow-rest.md §3.2. */
export const LIMITS = {
  batchMetrics: 1000,
  batchParams: 100,
  batchTags: 100,
  batchEntities: 1000,
  /** `MAX_BATCH_LOG_REQUEST_SIZE = 1e6` bytes; we keep a margin for the JSON envelope. */
  batchBytes: 1_000_000,
  keyLength: 250,
  paramValue: 6000,
  tagValue: 5000,
  experimentName: 500,
  datasetName: 500,
  datasetDigest: 36,
  datasetSource: 65_536,
  inputTagValue: 500,
} as const;
