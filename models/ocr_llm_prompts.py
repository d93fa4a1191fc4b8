"""Fixed text around the optimized prompt for the OCR + LLM answer model.

Only the user's instruction (the prompt being optimized) varies; this framing is the
same for every candidate so that CER differences come from the prompt alone.
"""

SYSTEM = "You are a careful assistant that answers questions about a scanned document."

DOCUMENT_TEMPLATE = "Document text (OCR):\n<<<\n{ocr_text}\n>>>\n\n{instruction}"

# demo_layout=page_first: the page asked about opens the conversation (so its prefix is
# shared by every prompt and demo set on that page); demos follow as earlier turns with
# an excerpt of their own page around the answer; the last turn asks about the page.
PAGE_FIRST_SYSTEM = SYSTEM + "\n\nThe document you are asked about, as OCR text:\n<<<\n{ocr_text}\n>>>"

DEMO_EXCERPT_TEMPLATE = "Another document of this kind (OCR excerpt):\n<<<\n{ocr_text}\n>>>\n\n{instruction}"

PAGE_FIRST_QUESTION = "Now about the document you are asked about (the one in the system message): {instruction}"

# demo_layout=inline: the demos are question -> answer lines between the page and the
# instruction, without their pages; the request starts exactly as one without demos, so
# the page prefix cached for any prompt on that page is reused.
INLINE_DEMOS = "Solved examples from other documents of this kind (question -> answer):\n{lines}\n\n{instruction}"
