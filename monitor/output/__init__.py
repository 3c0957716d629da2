"""Record writers (JSON Lines, CSV, table) and the number formatting behind them."""
