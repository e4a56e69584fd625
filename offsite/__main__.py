from offsite.cli import app

app(prog_name="offsite")
