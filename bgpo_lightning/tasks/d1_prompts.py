"""d1's Countdown and Sudoku prompts, character for character, as our format templates.

Paper comparisons need the exact texts of dllm-reasoning/d1 ``diffu-grpo/data_utils.py``
(commit 837888f): its system prompts followed by its task prompts. d1 sends each as a single
user message; whether a chat template wraps it is the policy's ``use_chat_template`` option.
"""

from __future__ import annotations

# d1's generic system prompt (leading and trailing newline included).
SYSTEM_PROMPT = (
    "\nRespond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"
)

# d1's Sudoku system prompt, which replaces the generic one for Sudoku.
SUDOKU_SYSTEM_PROMPT = (
    "\nPlease solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character "
    "string reading left-to-right, top-to-bottom, where '0' represents empty cells.\n\n"
    "Rules:\n"
    "- Fill empty cells with digits 1-4\n"
    "- Each row must contain digits 1-4 exactly once\n"
    "- Each column must contain digits 1-4 exactly once\n"
    "- Each 2x2 box must contain digits 1-4 exactly once\n\n"
    "Important: Your solution must be a COMPLETE 16-character string with only the digits 1-4, "
    "representing your final solved grid.\n\n"
    "Respond in this exact format:\n"
    "<reasoning>\nYour step-by-step solving process\n</reasoning>\n"
    "<answer>\n[16-character solution string with no spaces or separators]\n</answer>\n"
)

# {nums} is the number list as Python prints it ("[3, 5, 2]"), as in d1's f-string.
COUNTDOWN_PROMPT = (
    SYSTEM_PROMPT + "\nUsing only the numbers {nums}, create an arithmetic expression that "
    "evaluates to exactly {target}. You must use all numbers from the list, and each number "
    "must be used exactly once. You may use the operations +, -, *, and / as needed. After "
    "reasoning, provide only your final expression inside <answer></answer> tags without "
    "including an equals sign or the target number. For example, if the numbers are "
    "[2, 3, 4] and the target is 5, a valid answer is: <answer>\n2*4-3\n</answer>"
)

SUDOKU_PROMPT = SUDOKU_SYSTEM_PROMPT + "\n\nSolve the following Sudoku puzzle: {puzzle}\n"

# SFT warm-start target in the answer layout d1's prompts show (its Countdown example).
ANSWER_TARGET = "<answer>\n{solution}\n</answer>"
