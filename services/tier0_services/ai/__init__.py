"""AI features of the region API: image search and grounded log/document diagnostics.

Providers (embedder, reranker, answerer) sit behind the small interfaces in `providers`; `provider_choice`
chooses Cohere when `COHERE_API_KEY` is set and the local ONNX MiniLM model otherwise, so every
feature works offline and gets better, through the same API, when keyed.
"""
