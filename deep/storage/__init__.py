"""Storage formats: the offline dataset format and its importers, atomic files, locks and checksums."""
