"""OpenAI-compatible API backends for both schemes (OpenAI, vLLM, llama.cpp, TGI, Ollama, Azure).

transport.py is the one base class for the HTTP side (retries in retry.py, URL checks and
secret scrubbing in endpoint.py); generative.py and embedding.py only build payloads and
read answers (replies.py). The key is read from the environment (OPENAI_API_KEY or
--api-key-env NAME) and never written anywhere.
"""

from .embedding import OpenAIEmbeddingScorer
from .generative import OpenAIGenerativeScorer
from .transport import OpenAITransport

__all__ = ["OpenAIEmbeddingScorer", "OpenAIGenerativeScorer", "OpenAITransport"]
