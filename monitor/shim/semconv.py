"""Span and attribute names: OpenTelemetry GenAI semantic conventions plus nbmon's own."""

OPERATION = "generate_content"
PROVIDER_GEMINI = "gcp.gemini"
PROVIDER_VERTEX = "gcp.vertex_ai"

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_OUTPUT_TYPE = "gen_ai.output.type"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

NBMON_ERROR_CLASS = "nbmon.error_class"
NBMON_HTTP_STATUS_CODE = "nbmon.http.status_code"
NBMON_GRPC_STATUS = "nbmon.grpc_status"
NBMON_ATTEMPTS = "nbmon.attempts"
NBMON_IMAGES_FINAL = "nbmon.images.final"
NBMON_IMAGES_THOUGHT = "nbmon.images.thought"
NBMON_IMAGE_SIZE = "nbmon.image.size"
NBMON_IMAGE_ASPECT_RATIO = "nbmon.image.aspect_ratio"
NBMON_COST_USD = "nbmon.cost.estimated_usd"
NBMON_BLOCK_STAGE = "nbmon.block.stage"
NBMON_BLOCK_REASON = "nbmon.block.reason"
NBMON_QUOTA_ID = "nbmon.quota.id"
NBMON_RETRY_AFTER = "nbmon.retry_after_s"
NBMON_PROMPT = "nbmon.prompt"  # only with capture_content=True
NBMON_ERROR_CAUSE = "nbmon.error.cause"
NBMON_SERVICE_TIER = "nbmon.service_tier"  # the tier applied (or requested, when the response says none)
NBMON_SERVICE_TIER_REQUESTED = "nbmon.service_tier.requested"  # only when another tier was applied
NBMON_MODEL_SERVED = "nbmon.model.served"  # only on a reroute: the model that answered
NBMON_MODEL_REROUTED = "nbmon.model.rerouted"
NBMON_MODEL_LIFECYCLE = "nbmon.model.lifecycle"  # deprecated | retired: the requested model's

ATTEMPT_EVENT = "nbmon.http_attempt"
EVENT_ATTEMPT = "nbmon.attempt"
EVENT_CODE = "http.response.status_code"
