"""Storage backends behind one interface (see ``drivers.base``). No HTTP, no database here."""
