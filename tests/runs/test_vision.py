"""Telling a model that cannot see from a picture the model server could not read: the error
texts real servers send, table-driven, and how a refused request is classed."""

from __future__ import annotations

import openai
import pytest

from bot.runs.vision import ImageRefusal, endpoint_key, image_refusal, says_it_cannot_see
from tests.fakes.openai_server import FakeOpenAI, Fault

OPENAI_BLIND = "Invalid content type. image_url is only supported by certain models."
LLAMA_CPP_BLIND = (
    "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
)
UNREADABLE = (
    "You uploaded an unsupported image. Please make sure your image is below 20 MB in size and "
    "is of one the following formats: ['png', 'jpeg', 'gif', 'webp']."
)
TOO_LONG = (
    "This model's maximum context length is 8192 tokens. However, your messages resulted in "
    "9000 tokens. Please reduce the length of the messages."
)

BLIND = [
    # OpenAI and Azure OpenAI, Chat Completions (400 invalid_request_error).
    OPENAI_BLIND,
    # The same refusal on the Responses API.
    "Invalid content type. input_image is only supported by certain models.",
    # vLLM serving a text-only model (400).
    "facebook/opt-125m is not a multimodal model None",
    # vLLM with --limit-mm-per-prompt image=0 (400).
    "At most 0 image(s) may be provided in one request.",
    # llama.cpp's llama-server started without --mmproj (500).
    LLAMA_CPP_BLIND,
    # Ollama, a model without its vision projector (500).
    "Failed to create new sequence: failed to process inputs: this model is missing data "
    "required for image input",
    # LM Studio.
    "Model does not support images. Please use a model that does.",
    # Google's Gemini API (400 INVALID_ARGUMENT).
    "Image input modality is not enabled for models/gemini-1.5-flash",
    # As the openai client words it: the status, then the body.
    "Error code: 400 - {'error': {'message': 'Invalid content type. image_url is only supported "
    "by certain models.', 'type': 'invalid_request_error', 'param': 'messages.[1].content.[1]"
    ".type', 'code': None}}",
]
NOT_BLIND = [
    # OpenAI, a picture it could not decode (invalid_image_format / sanitizer_server_error).
    UNREADABLE,
    "You uploaded an unsupported image. Please make sure your image is valid.",
    # vLLM: a limit on this request, not blindness.
    "At most 1 image(s) may be provided in one request.",
    # llama.cpp: a picture it could not decode.
    "Failed to load image or audio file",
    # LM Studio: a malformed data URL.
    "'url' field must be a base64 encoded image.",
    # A picture whose bytes do not match its declared type.
    "messages.0.content.0.image.source.base64.data: Image does not match the provided media type",
    "Invalid image.",
    "image could not be decoded",
    "Image size exceeds the maximum of 20 MB",
    # Other refusals of the request.
    TOO_LONG,
    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
    "with 'tool_calls'.",
    "The model `gpt-5-nano` does not exist or you do not have access to it.",
    "",
]


@pytest.mark.parametrize("said", BLIND)
def test_an_unambiguous_answer_means_the_model_cannot_see(said: str) -> None:
    assert says_it_cannot_see(said)


@pytest.mark.parametrize("said", NOT_BLIND)
def test_a_bad_picture_or_any_other_refusal_says_nothing_about_the_model(said: str) -> None:
    assert not says_it_cannot_see(said)


async def _refused(fake: FakeOpenAI, status: int, said: str, code: str | None) -> Exception:
    """What the openai client raises when the server refuses a request in these words."""
    fake.fail_next(Fault(status=status, body=said, error_code=code))
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    try:
        await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    except openai.APIStatusError as exc:
        return exc
    finally:
        await client.close()
    raise AssertionError("the request was not refused")


@pytest.mark.parametrize(
    ("status", "said", "code", "refusal"),
    [
        (400, OPENAI_BLIND, None, ImageRefusal.BLIND),
        (500, LLAMA_CPP_BLIND, None, ImageRefusal.BLIND),  # llama.cpp says it with a 500
        (400, UNREADABLE, "invalid_image_format", ImageRefusal.PICTURE),
        (400, "fake error 400", None, ImageRefusal.PICTURE),
        (400, TOO_LONG, "context_length_exceeded", None),  # too long: trimmed instead
        (500, "upstream failed", None, None),
        (429, "Rate limit reached", "rate_limit_exceeded", None),
    ],
)
async def test_what_a_refused_request_with_images_says(
    fake_openai: FakeOpenAI, status: int, said: str, code: str | None, refusal: ImageRefusal | None
) -> None:
    refused = await _refused(fake_openai, status, said, code)
    assert isinstance(refused, openai.APIStatusError)
    assert image_refusal(refused) is refusal


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://api.openai.com/v1/", "https://api.openai.com/v1"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("http://user:secret@10.0.0.5:8000/v1/?key=abc", "http://10.0.0.5:8000/v1"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
    ],
)
def test_the_endpoint_is_kept_without_credentials(url: str, key: str) -> None:
    assert endpoint_key(url) == key
