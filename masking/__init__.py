"""Phone-number masking: the rules (plain Python) and, under ``masking.web``, their Flask faces."""
