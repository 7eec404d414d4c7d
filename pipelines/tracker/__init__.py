"""The experiment tracker: a markdown page whose marked section is regenerated from the marts while
people's notes around it are kept. `marked_page` reads, splices and writes the page
(`update_tracker`); `section_render` renders the section's tables from the rows `mart_extras` and
the retrospective query give; `table_cells` formats their cells."""
