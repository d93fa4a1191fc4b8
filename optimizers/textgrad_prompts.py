"""Text the ``textgrad`` optimizer hands to TextGrad: roles, the function's purpose, constraints.

TextGrad builds its own backward and update meta-prompts around these; everything
here is what tells the advisor what the variable is and what it must keep.
"""

PROMPT_ROLE = (
    "instruction given to a small document-reading model together with a scanned Russian document; "
    "the model must answer with the value of one field ({doc_class}: {question_type})"
)

FUNCTION_PURPOSE = (
    "The document-reading model answers the instruction on several training documents (the literal text "
    "{{question}} in the instruction is replaced by each document's question). Each answer is compared with "
    "the true value by character error rate (CER: 0 is a perfect copy, 1 means nothing right, above 1 means "
    "extra text). The output lists the mean CER and the wrong answers with their error class."
)

EVALUATION_ROLE = "evaluation of the model's answers: mean CER and wrong answers (lower CER is better)"

EVALUATION = """Mean CER {cer:.3f} on {n} training documents ({exact} answered exactly).
Wrong answers (expected -> answered, error class):
{mistakes}"""

NO_MISTAKES = "(none: every answer was exact)"

CONSTRAINTS = (
    "Keep the literal placeholder {question} exactly once: it is replaced by the document's question. "
    "Do not write an actual question in its place.",
    "Keep an output-format clause telling the model to answer with the field value only, exactly as printed, "
    "with no explanations.",
    "Return only the instruction text: no braces around it, no quotes, no commentary, at most 60 words.",
)

# Words that show an output-format clause survived a rewrite (checked before scoring).
FORMAT_CLAUSE_MARKERS = ("only", "только", "exactly", "точно", "без пояснений", "no explanation", "value", "значени")
