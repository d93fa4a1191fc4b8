"""Text the ``dspy`` optimizer hands to DSPy: the signature, field descriptions and GEPA's feedback."""

SIGNATURE_DOC = "Read the document and answer with the value of the asked field, exactly as printed."

DOCUMENT_FIELD = "identifier of the scanned document (the answer model sees its page)"
QUESTION_FIELD = "the question about one field of the document"
ANSWER_FIELD = "the field's value only, exactly as printed in the document"

# GEPA's textual feedback for one answer (its reflection model reads these).
FEEDBACK_EXACT = "Correct: the answer is exactly the expected value."
FEEDBACK_WRONG = ("Wrong ({error_class}): expected \"{expected}\", the model answered \"{answered}\" "
                  "(character error rate {cer:.2f}). The instruction must make the model copy only the "
                  "field's value, exactly as printed.")
