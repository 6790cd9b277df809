"""Public list prices (USD per million input / output tokens) for the models in the shared routing data.

Each entry: model name -> (input, output, source). Rules, in order:
1. RouterArena's `model_cost/cost.json` (Apache-2.0) where it lists the model or the same API product;
2. the provider's published API list price for that model version at the time the benchmark ran (2024),
   recorded from the provider's pricing page;
3. open-weight models with no first-party API: Together AI's 2024 serverless price tier by parameter count
   (<=4B $0.10, 4-8B $0.20, 8-21B $0.30, 21-41B $0.80, 41-80B $0.90, per million tokens in and out).
Prices change; these are the prices the routers are trained and benchmarked with, not a live price list.
"""

RA = "RouterArena cost.json"
TOGETHER = "Together AI 2024 size tier"

PRICES = {
    # OpenAI
    "gpt-4o-2024-05-13": (5.0, 15.0, "OpenAI list price (2024-05)"),
    "gpt-4o-2024-08-06": (2.5, 10.0, f"{RA} (gpt-4o)"),
    "chatgpt-4o-latest-24-09-07": (5.0, 15.0, "OpenAI list price (chatgpt-4o-latest, 2024-09)"),
    "gpt-4o-mini-2024-07-18": (0.15, 0.6, f"{RA} (gpt-4o-mini)"),
    "gpt-4-turbo-2024-04-09": (10.0, 30.0, f"{RA} (gpt-4-turbo)"),
    "gpt-4-0314": (30.0, 60.0, "OpenAI list price (gpt-4, 8k context)"),
    "gpt-4-1106-preview": (10.0, 30.0, f"{RA} (gpt-4-1106-preview)"),
    "gpt-3.5-turbo-0125": (0.5, 1.5, "OpenAI list price (gpt-3.5-turbo-0125)"),
    "o1-mini-2024-09-12": (3.0, 12.0, "OpenAI list price (o1-mini, 2024-09)"),
    "o1-preview-2024-09-12": (15.0, 60.0, "OpenAI list price (o1-preview, 2024-09)"),
    # Anthropic
    "claude-3-5-sonnet-20240620": (3.0, 15.0, f"{RA} (anthropic/claude-3.5-sonnet)"),
    "claude-3-haiku-20240307": (0.25, 1.25, f"{RA} (claude-3-haiku-20240307)"),
    "claude-3-opus-20240229": (15.0, 75.0, "Anthropic list price (claude-3-opus)"),
    "claude-3-sonnet-20240229": (3.0, 15.0, "Anthropic list price (claude-3-sonnet)"),
    # Google
    "gemini-1.5-flash": (0.075, 0.3, "Google list price (gemini-1.5-flash, <=128k, 2024-08)"),
    "gemini-1.5-flash-exp-0827": (0.075, 0.3, "Google list price of gemini-1.5-flash (experimental variant)"),
    "gemini-1.5-pro": (1.25, 5.0, "Google list price (gemini-1.5-pro, <=128k, 2024-10)"),
    "gemini-1.5-pro-exp-0801": (1.25, 5.0, "Google list price of gemini-1.5-pro (experimental variant)"),
    "gemini-1.5-pro-exp-0827": (1.25, 5.0, "Google list price of gemini-1.5-pro (experimental variant)"),
    "gemma-2-2b-it": (0.1, 0.1, TOGETHER + " (2B)"),
    "gemma-2-9b-it": (0.3, 0.3, TOGETHER + " (9B)"),
    "gemma-2-27b-it": (0.8, 0.8, TOGETHER + " (27B)"),
    "gemma-2-27b-it@together": (0.8, 0.8, TOGETHER + " (27B)"),
    # Meta Llama
    "Meta-Llama-3-8B-Instruct": (0.1, 0.1, f"{RA} (meta-llama/llama-3-8b-instruct)"),
    "Meta-Llama-3-70B-Instruct": (0.88, 0.88, f"{RA} (meta-llama/Meta-Llama-3-70B-Instruct-Turbo)"),
    "Meta-Llama-3.1-8B-Instruct": (0.22, 0.22, f"{RA} (llama-3-1-8b-instruct)"),
    "Meta-Llama-3.1-70B-Instruct": (0.88, 0.88, f"{RA} (meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo)"),
    "Meta-Llama-3.1-70B-Instruct@hyperbolic": (0.88, 0.88, f"{RA} (meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo)"),
    "Llama-3.1-405B-Inst@sambanova": (2.4, 2.4, f"{RA} (llama-3-1-405b-instruct)"),
    "Llama-3.1-405B-Instruct-Turbo": (2.4, 2.4, f"{RA} (llama-3-1-405b-instruct)"),
    "Meta-Llama-3.1-405B-Instruct@hyperbolic": (2.4, 2.4, f"{RA} (llama-3-1-405b-instruct)"),
    "Athene-70B": (0.9, 0.9, TOGETHER + " (70B Llama-3 fine-tune)"),
    # Mistral
    "Mistral-Large-2": (2.0, 6.0, f"{RA} (mistral-large-latest)"),
    "Mistral-Nemo-Instruct-2407": (0.15, 0.15, f"{RA} (open-mistral-nemo)"),
    "Mixtral-8x7B-Instruct-v0.1": (0.6, 0.6, f"{RA} (open-mixtral-8x7b)"),
    "mixtral-8x7b-instruct-v0.1": (0.6, 0.6, f"{RA} (mistralai/mixtral-8x7b-instruct)"),
    # Qwen, Yi, Phi (open weights)
    "Qwen2-7B-Instruct": (0.2, 0.2, TOGETHER + " (7B)"),
    "Qwen2-72B-Instruct": (0.9, 0.9, TOGETHER + " (72B)"),
    "Qwen2.5-3B-Instruct": (0.1, 0.1, TOGETHER + " (3B)"),
    "Qwen2.5-7B-Instruct": (0.2, 0.2, TOGETHER + " (7B)"),
    "Qwen2.5-32B-Instruct": (0.8, 0.8, TOGETHER + " (32B)"),
    "Qwen2.5-72B-Instruct": (0.9, 0.9, TOGETHER + " (72B)"),
    "Yi-1.5-9B-Chat": (0.3, 0.3, TOGETHER + " (9B)"),
    "Yi-1.5-34B-Chat": (0.8, 0.8, TOGETHER + " (34B)"),
    "Phi-3-mini-4k-instruct": (0.1, 0.1, TOGETHER + " (3.8B)"),
    "Phi-3.5-mini-instruct": (0.1, 0.1, TOGETHER + " (3.8B)"),
    # DeepSeek, Cohere, 01.AI, Reka (first-party APIs)
    "deepseek-chat": (0.14, 0.28, "DeepSeek list price (2024, cache miss)"),
    "deepseek-coder": (0.25, 1.0, f"{RA} (deepseek-coder)"),
    "DeepSeek-Coder-V2-0724": (0.14, 0.28, "DeepSeek list price (2024, cache miss)"),
    "deepseek-v2.5-0908": (0.14, 0.28, "DeepSeek list price (2024, cache miss)"),
    "command-r": (0.15, 0.6, "Cohere list price (command-r-08-2024)"),
    "command-r-plus": (2.5, 10.0, "Cohere list price (command-r-plus-08-2024)"),
    "yi-large": (3.0, 3.0, "01.AI platform list price (yi-large)"),
    "yi-large-preview": (3.0, 3.0, "01.AI platform list price of yi-large (preview)"),
    "reka-core-20240501": (10.0, 25.0, "Reka list price (reka-core, 2024-05)"),
    "reka-flash-20240226": (0.8, 2.0, "Reka list price (reka-flash, 2024)"),
    # MMLU-Pro's models (the versions its authors ran)
    "gemini-1.5-pro-002": (1.25, 5.0, "Google list price (gemini-1.5-pro, <=128k, 2024-10)"),
    "gemini-1.5-flash-002": (0.075, 0.3, "Google list price (gemini-1.5-flash, <=128k, 2024-08)"),
    "llama-3.1-70b-instruct": (0.88, 0.88, f"{RA} (meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo)"),
    "llama-3.1-8b-instruct": (0.22, 0.22, f"{RA} (llama-3-1-8b-instruct)"),
    "deepseek-chat-v2": (0.14, 0.28, "DeepSeek list price (deepseek-chat, 2024, cache miss)"),
    "qwen1.5-72b-chat": (0.9, 0.9, TOGETHER + " (72B)"),
    "qwen1.5-7b-chat": (0.2, 0.2, TOGETHER + " (7B)"),
    "jamba-1.5-large": (2.0, 8.0, "AI21 list price (jamba-1.5-large, 2024-08)"),
    "command-r-v01": (0.5, 1.5, "Cohere list price (command-r, 2024-03 launch)"),
    "phi-3-mini-4k-instruct": (0.1, 0.1, TOGETHER + " (3.8B)"),
    "mistral-7b-instruct-v0.2": (0.2, 0.2, TOGETHER + " (7B)"),
    "yi-6b-chat": (0.2, 0.2, TOGETHER + " (6B)"),
    "mathstral-7b": (0.2, 0.2, TOGETHER + " (7B)"),
}
