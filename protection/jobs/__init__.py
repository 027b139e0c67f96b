"""Jobs: the machinery every backup, restore and management run goes through (`runner`), Cancel
(`services`), and the Backup jobs pages (`views`, `urls`)."""
