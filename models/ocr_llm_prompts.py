"""Fixed text around the optimized prompt for the OCR + LLM answer model.

Only the user's instruction (the prompt being optimized) varies; this framing is the
same for every candidate so that CER differences come from the prompt alone.
"""

SYSTEM = "You are a careful assistant that answers questions about a scanned document."

DOCUMENT_TEMPLATE = "Document text (OCR):\n<<<\n{ocr_text}\n>>>\n\n{instruction}"
