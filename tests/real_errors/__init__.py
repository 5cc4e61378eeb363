"""Classification of exceptions provoked for real, through real libraries, against real servers."""
