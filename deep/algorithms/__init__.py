"""The offline methods: networks, targets, penalties, the learners (one file per method) and evaluation."""
