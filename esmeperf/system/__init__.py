"""What the operating system offers: its mechanisms, probed, and the open-files limit."""
