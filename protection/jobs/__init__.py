"""Jobs: the machinery every backup, restore and management run goes through (`runner`), and the
Backup jobs pages."""
