"""Text of the meta-prompts the advisor and critic optimizers send, and of the rule edits.

Meta-prompts are in English: the local 1.5B advisor wrote nonsense when asked in
Russian, but reliably puts prompts between <prompt> tags when asked in English. The
prompts it writes may be in either language; the rule-edit clauses are in Russian, the
language of the documents and of the data set's questions.
"""

SYSTEM = (
    "You write instructions (prompts) for a small document-reading model. The model sees one "
    "document page and your instruction, and must reply with one field value only. "
    "Answers are scored by character error rate against the true value: every extra word, "
    "quote, label or explanation counts as an error."
)

# {question} inside a written prompt is replaced by each example's own question.
PLACEHOLDER_RULE = (
    "A prompt may contain the placeholder {{question}} exactly once; it is replaced by the "
    "data set's question for each document (e.g. \"{example_question}\"). Keep prompts under "
    "60 words. Put prompt 1 between <prompt1> and </prompt1>, prompt 2 between <prompt2> and </prompt2>, "
    "and so on; write nothing after the last prompt."
)

TASK = (
    "Answer model: {model}. Documents: {doc_class} (Russian). Field: {question_type}.\n"
    "Questions asked in the data set:\n{questions}\n"
    "True answers on training documents:\n{answers}\n"
)

PROPOSE = (
    "{task}\n"
    "The data set's own question as the prompt scores CER {baseline_cer}. Typical mistakes of the "
    "model with it:\n{mistakes}\n\n"
    "Write {n} different prompts that make the model reply with exactly the field value as printed. "
    "Vary the approach: a short direct instruction, one that names the field's format, one that "
    "forbids extra words. {placeholder_rule}"
)

CRITIC = (
    "{task}\n"
    "Prompts tried so far, best first, with their CER on validation documents (lower is better):\n"
    "{scored}\n\n"
    "Mistakes of the best prompt on training documents (expected -> answered, error class):\n"
    "{mistakes}\n\n"
    "Wrong answers of the best prompt on validation documents, by kind:\n"
    "{error_counts}\n\n"
    "{lead} {n} new prompts, each different from all prompts above:\n"
    "1. a new prompt that avoids the listed mistakes;\n"
    "2. the best prompt with one small edit that fixes the most frequent mistake ({top_class});\n"
    "3. the best prompt with one added constraint on the output format.\n"
    "{placeholder_rule}"
)

# How the critic's request asks for its prompts: after a short analysis (OPRO-style; strong
# advisors write better edits after it), or straight away (a small advisor can spend its whole
# reply on the analysis and never reach the tags).
ANALYSIS_FIRST = (
    "First write two sentences of analysis: what the best prompts do right and what causes the "
    "mistakes. Then write"
)
PROMPTS_ONLY = "Write nothing but"

CORRECTION = (
    "Your reply had no prompt between tags. Reply again with {n} prompts, prompt 1 between <prompt1> "
    "and </prompt1>, prompt 2 between <prompt2> and </prompt2>, and so on, and nothing else."
)

# The reply ends at the last requested prompt's closing tag (a stop string), and its length is
# capped at what that many prompts need: the analysis, then ~150 tokens per prompt (60 words).
CLOSING_TAG = "</prompt{n}>"
REPLY_TOKENS_FIXED = 120
REPLY_TOKENS_PER_PROMPT = 150

NO_MISTAKES = "(none: every training answer was exact)"

# What each error class (``prompt_opt_api.error_classes``) means, for the critic's counts.
ERROR_CLASS_MEANINGS = {
    "empty": "no answer at all",
    "other_script": "look-alike letters of the other alphabet (Latin for Cyrillic or the reverse)",
    "format": "the right value written another way (separators, currency sign, a time added)",
    "copied_demo": "an example's answer copied instead of this document's",
    "chatty": "the value with extra words, or a long reply",
    "elsewhere_on_page": "another value printed on the page (the wrong field)",
    "not_on_page": "a value not printed on the page (misread or made up)",
    "other": "none of these",
}
NO_WRONG_ANSWERS = "(none: every validation answer was exact)"

# -- rule edits (no LLM) -------------------------------------------------------
VALUE_ONLY = "Ответь только значением поля, без пояснений и без кавычек."
COPY_EXACTLY = "Перепиши значение точно так, как оно напечатано в документе."
CYRILLIC_LOOKALIKES = "Пиши русскими буквами (А, В, Е, К, М, Н, О, Р, С, Т, У, Х), не латинскими."
FORMAT_DATE = "Формат ответа: ДД.ММ.ГГГГ."
FORMAT_SHAPE = "Формат ответа: {shape} (9 — цифра, Я — буква)."
FORMAT_CYRILLIC = "Ответ пиши русскими буквами, как в документе."
FORMAT_CYRILLIC_UPPER = "Ответ пиши заглавными русскими буквами, как в документе."
FORMAT_UPPER = "Ответ пиши заглавными буквами."
FORMAT_LENGTH = "Ответ длиной {lo}–{hi} символов."
# when format errors dominate and no date or shape pins the answer: the commonest shapes with digits
FORMAT_SHAPES = "Пиши ответ в виде, как в образцах (9 — цифра, Я — русская буква, Z — латинская): {shapes}."
FORMAT_SHAPES_LATIN = "Write the answer in the form of these patterns (9 = digit, Z = letter): {shapes}."
LOCATION = "Поле находится в {where} части страницы{side}."
LOCATION_ROWS = ("верхней", "средней", "нижней")
LOCATION_SIDES = (", слева", ", справа")
