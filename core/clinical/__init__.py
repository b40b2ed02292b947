"""The clinical rules the whole engine shares: the knowledge table of findings and treatments
(``knowledge``), verdict parsing (``verdicts``), the prompt a model reads (``prompts``) and the
cost-aware clinical reward (``rewards``).

Above ``core.cases``: these rules read case records, never models.
"""
