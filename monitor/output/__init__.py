"""Record writers (JSON Lines, CSV, table), the number formatting behind them, and the pictures."""
