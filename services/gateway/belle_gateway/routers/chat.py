"""OpenAI's chat completions: `POST /v1/chat/completions`, streaming included.

The model is one of the team's own or a shared base model, by name or id; the serving itself is the
`ChatService` on `app.state` (in-process engine or proxy).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from belle_gateway.deps import TeamDep
from belle_gateway.errors import APIError
from belle_gateway.openapi import error_responses
from belle_gateway.serving.protocol import ChatCompletion, ChatCompletionRequest
from belle_gateway.serving.service import ChatService, ModelRef
from belle_shared.models import find_model

router = APIRouter(prefix="/v1/chat", tags=["chat"])


def _model_ref(request: Request, team_id, ref: str) -> ModelRef:
    with request.app.state.read_session_factory() as session:
        model = find_model(session, team_id, ref)
        if model is None:
            raise APIError(404, f"model: no model {ref!r} among this team's models and the shared base models",
                           param="model", code="model_not_found")
        return ModelRef(id=str(model.id), name=model.name, uri=model.uri)


@router.post("/completions", response_model=ChatCompletion,
             responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream=true"},
                        404: {"description": "No such model for this team"}, **error_responses(503)})
async def create(body: ChatCompletionRequest, request: Request, team: TeamDep):
    """Chat with a model: the conversation is rendered with the model's own chat template."""
    model = await run_in_threadpool(_model_ref, request, team.id, body.model)
    service: ChatService = request.app.state.chat
    return await service.complete(body, model)
