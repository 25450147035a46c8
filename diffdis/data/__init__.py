"""Data: captioned image datasets (Hugging Face `datasets`), image transforms, label sets, toy worlds."""
