"""PAM's instructions (spec section 6) in the Qwen ChatML template, and the `<image>` splice.

The output type is chosen only by the instruction text. The prompt holds one `<image>`
sentinel; the text on each side is tokenised separately (no BOS for Qwen) and the visual block
goes between the two chunks, as the official code does with its sentinel id -200.
"""

from __future__ import annotations

from pam_ros.core.vocabulary import IMAGE_KINDS, KINDS, LANGUAGES, VIDEO_KINDS

IMAGE_SENTINEL = "<image>"

__all__ = ["IMAGE_KINDS", "IMAGE_SENTINEL", "INSTRUCTIONS", "KINDS", "LANGUAGES", "VIDEO_KINDS"]

# Exactly the notebooks' strings (spec 6). The video caption carries a history slot.
INSTRUCTIONS: dict[str, dict[str, str]] = {
    "category": {
        "en": "Classify this subject and provide its label.",
        "zh": "对该目标对象进行分类并提供标签",
    },
    "explain": {
        "en": "Classify this subject and provide the label and its definition.",
        "zh": "对该目标对象进行分类并提供标签和名词功能解释",
    },
    "caption": {
        "en": "Provide a concise caption for this subject.",
        "zh": "对该目标对象提供一个概括的描述",
    },
    "detailed_caption": {
        "en": "Provide a comprehensive and detailed description for this subject.",
        "zh": "对该目标对象提供一个全面且详细的描述",
    },
    "video_caption": {
        "en": "Provide a caption for this subject in this video.\nPrevious caption: {history}",
        "zh": "对该视频中的目标对象提供一个描述。\n历史描述：{history}",
    },
}

# What the history slot holds when there is no previous caption (spec 6 table).
EMPTY_HISTORY = {"en": "None", "zh": "无"}

SYSTEM_PROMPT = "You are a helpful assistant."


def instruction(kind: str, language: str, history: str | None = None) -> str:
    """The instruction text of one request (without the `<image>` line)."""
    text = INSTRUCTIONS[kind][language]
    if kind in VIDEO_KINDS:
        slot = history.strip() if history and history.strip() else EMPTY_HISTORY[language]
        text = text.format(history=slot)
    return text


def chat_prompt(kind: str, language: str, history: str | None = None) -> str:
    """The full ChatML prompt with one `<image>` sentinel (conv template `qwen_2`)."""
    return (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n{IMAGE_SENTINEL}\n{instruction(kind, language, history)}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def split_at_image(prompt: str) -> tuple[str, str]:
    """The text before and after the single `<image>` sentinel."""
    before, sep, after = prompt.partition(IMAGE_SENTINEL)
    if not sep or IMAGE_SENTINEL in after:
        raise ValueError(f"prompt must hold exactly one {IMAGE_SENTINEL}: {prompt!r}")
    return before, after
