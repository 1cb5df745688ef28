"""The Gradio document-QA app (``mmrag serve``): upload, index, ask, see the cited region.

Only the small pure modules (uploads, boxes, safety) import without Gradio; the app itself is
built by `mmrag.ui.app.build_app`, which imports Gradio when called.
"""
